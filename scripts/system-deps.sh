#!/usr/bin/env bash
# Installs the Debian tools that tests and benchmarks use as real peers: exiftool and sha256sum
# as benchmark anchors, ffmpeg to build test videos, Chromium for the UI tests, docker-compose to
# validate the compose file. Skips what is already there; does nothing (with a message) without apt.
set -u
need=()
command -v exiftool >/dev/null || need+=(libimage-exiftool-perl)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v docker-compose >/dev/null || need+=(docker-compose)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "system-deps: cannot install ${need[*]} (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}"
apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
  || echo "system-deps: apt-get install failed; tests that need ${need[*]} will skip" >&2
exit 0
