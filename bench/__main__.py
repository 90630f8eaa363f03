"""Run the benchmarks: `python -m bench` (the intake figures: speed, scale), `python -m bench all`,
or by name: `python -m bench speed scale media video memory dedup compression queue e2e airflow
conformance upload views`.

Each benchmark prints its own figures and the ratios against its anchors (sha256sum, exiftool,
`evidence ingest`). Figures depend on the machine and its load: compare runs on the same machine.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

BENCHMARKS = {
    "speed": (
        "bench.intake_speed",
        "`evidence ingest` (SQLite and PostgreSQL) vs sha256sum + exiftool and a minimal "
        "reference on the same photos; time and process-tree memory",
    ),
    "scale": (
        "bench.scale_bench",
        "per-photo intake of 50 new photos into generated collections of 0, 10k and 100k items",
    ),
    "media": (
        "bench.media_bench",
        "photo/video analysis vs sha256sum + exiftool, and vs the decode floor",
    ),
    "video": (
        "bench.video_bench",
        "video keyframes (PyAV seeks) vs a bare PyAV keyframe seek of the same 8 times, on 20 s "
        "1080p clips and one large clip; time and the decoder child's peak memory",
    ),
    "memory": (
        "bench.memory_bench",
        "peak memory and time of analysing one photo (bomb, 16-bit, big TIFF), fresh process each",
    ),
    "dedup": (
        "bench.dedup_bench",
        "near-duplicate query against 1,000,000 PDQ hashes; crop candidates reaching ORB and "
        "recording cost per item as the collection grows",
    ),
    "compression": (
        "bench.compression_bench",
        "compression-history signals on generated re-saves (Pillow, ffmpeg) and real cameras",
    ),
    "queue": ("bench.queue_bench", "review-queue filtering and paging over 100,000 items"),
    "e2e": (
        "bench.intake_e2e",
        "trigger-to-recorded through the running scheduler vs `evidence ingest` vs sha256sum + "
        "exiftool on the same photos, and per-file cost as the collection grows",
    ),
    "airflow": (
        "bench.airflow_overhead",
        "evidence_intake DAG vs `evidence ingest` on the same photos",
    ),
    "conformance": ("bench.conformance", "metadata agreement with ExifTool on ../shared/corpus"),
    "views": (
        "bench.views_bench",
        "full-size photo views and video proxies vs hashing and the intake's analysis",
    ),
    "upload": (
        "bench.upload_bench",
        "the upload page's SHA-256 in Chromium vs hashlib; signed parts vs boto3 to moto",
    ),
}


# What `make bench` runs: the intake figures, in a few minutes. `python -m bench all` runs every
# benchmark (the Airflow stack and the 1M-hash ones take much longer).
DEFAULT = ("speed", "scale")


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all when none are named)."""
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        for name, (_, what) in BENCHMARKS.items():
            print(f"  {name:<12} {what}")
        return 0
    names = list(BENCHMARKS) if argv == ["all"] else argv or list(DEFAULT)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    status = 0
    for name in names:
        module_name, what = BENCHMARKS[name]
        print(f"\n=== {name}: {what}")
        if importlib.util.find_spec(module_name) is None:
            print(f"(skipped: {module_name} is not available)")
            continue
        result = importlib.import_module(module_name).main([])
        status = status or int(result or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
