"""Every finding code the pipeline can emit, with its severity, what it means and what an analyst
does next; the thresholds the messages quote; docs/findings.md is generated from it.

Finding codes are a public contract: each is declared once here (a test checks that every code
any module emits is declared, and that every declared code is emitted somewhere).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from verification.core.findings import Severity
from verification.media.gps import GPS_FINDING_CODES

if TYPE_CHECKING:
    pass

UNKNOWN_OFFSET_SLACK_HOURS = 14.0  # UTC-12 .. UTC+14: any offset a naive clock may be in
GPS_TIME_DISAGREE_MINUTES = 10.0
FUTURE_GRACE = timedelta(minutes=5)  # device clocks drift; a few minutes fast is not a finding
THUMBNAIL_PDQ_THRESHOLD = 40
BRIGHT_MEAN, DARK_MEAN = 120.0, 25.0
NIGHT_SUN_DEG, DAY_SUN_DEG = -12.0, 20.0  # nautical dusk; sun well above the horizon
# Measured by `python -m bench compression` (docs/benchmarks.md, 2026-12-05).
SOFTWARE_TABLES_RELIABILITY = (
    "it fired on all 96 Pillow re-saves of generated camera-like originals (qualities 50-95, "
    "each estimated exactly) and on none of the 12 originals, but on real files it fired on "
    "22/22 camera files an editor re-saved and on 11/23 that no editor names: many cameras "
    "and phones use the standard tables themselves."
)
ENCODER_RELIABILITY = (
    "On the generated set it named ffmpeg for all 60 ffmpeg re-encodes (qscale 2-12) and for "
    "none of the 108 other files."
)

# code -> (severity, what it means, what the analyst should do)
FINDING_CODES: dict[str, tuple[Severity, str, str]] = {
    # Emitted by the extract and record steps (verification/media, verification/pipeline.py):
    # declared here so that this catalogue, and docs/findings.md, cover every code.
    "unreadable": (
        "warning",
        "The file, or one part of it (stage in the evidence: exif, decode, container ...), "
        "could not be read; the item's status becomes 'unreadable'.",
        "Open the original with another tool (exiftool, ffprobe); a truncated or corrupt "
        "upload may need to be submitted again.",
    ),
    "embedded_thumbnail_unreadable": (
        "info",
        "The EXIF thumbnail could not be decoded, so it was not compared with the image.",
        "None usually; compare the thumbnail by hand (exiftool -b -ThumbnailImage) if editing "
        "is suspected.",
    ),
    "claims-invalid": (
        "warning",
        "The submitter's claims (object metadata or .claims.json sidecar) could not be read; "
        "claimed place and time are left out of the checks.",
        "Ask the submitter for the claims again; fix the sidecar and resubmit.",
    ),
    "collection-hash-mismatch": (
        "critical",
        "The SHA-256 computed when the file was collected (in the investigator's browser on the "
        "upload page, or by `evidence submit`) differs from the SHA-256 of the bytes the pipeline "
        "received and preserved; the evidence holds both. The ingestion event records the hash "
        "at collection and a fixity check event (stage collection) the comparison.",
        "Do not rely on this copy: ask the submitter to upload the file again from the original "
        "and compare the two hashes with the one on their receipt.",
    ),
    "exact-duplicate": (
        "warning",
        "The same bytes (same SHA-256) were submitted more than once; all submissions are in "
        "the evidence.",
        "Compare the submissions' claims: the same file told as different events is a signal.",
    ),
    "near-duplicate": (
        "warning",
        "The item looks like other items: PDQ distance within the threshold (a mirrored or "
        "rotated copy through the dihedral hashes), or a crop confirmed by ORB features. Both "
        "items carry it, whichever was processed first; the earlier one's change is a custody "
        "event of its own (a re-evaluation). The record's duplicates say how each pair matched "
        "(keyframes, transform, for crops the matched points, inliers and where one picture sits "
        "in the other: 'a 92 % crop of the top-left'); the evidence names the earliest copy and "
        "the rule that decided it (first-seen time in this collection, then capture time, then "
        "SHA-256).",
        "Compare with the earliest copy side by side: an older copy suggests recycled content, "
        "a crop or mirror suggests re-posting; ask the submitter where the file came from.",
    ),
    **GPS_FINDING_CODES,
    "location-contradicts-claim": (
        "critical",
        "The file's GPS position is farther from the claimed place than the configured "
        "threshold (distance_threshold_km).",
        "Geolocate the content visually; check whether the device could have kept a stale fix "
        "or whether the file was re-shared from elsewhere.",
    ),
    "location-matches-claim": (
        "info",
        "The file's GPS position is within the threshold of the claimed place.",
        "None; embedded GPS can be edited, so corroborate with visual geolocation.",
    ),
    "no-location-in-file": (
        "info",
        "The file carries no usable GPS position (common: most apps strip it).",
        "Geolocate the content visually if the place matters.",
    ),
    "time-contradicts-claim": (
        "critical",
        "The capture time differs from the claimed time by more than the tolerance "
        "(time_tolerance_hours), after allowing for an unknown UTC offset when there is one.",
        "Check the device clock (other files from the same source), the time-zone inference, "
        "and whether the content predates the claimed event.",
    ),
    "time-matches-claim": (
        "info",
        "The capture time is within the tolerance of the claimed time.",
        "None; capture times can be edited, so corroborate (shadows, weather, other sources).",
    ),
    "capture-time-in-future": (
        "critical",
        "The capture time is later than the moment the file was submitted.",
        "The device clock was wrong or the metadata was edited; do not rely on the capture time.",
    ),
    "placeholder-date": (
        "warning",
        "A date field holds a placeholder (0000:00:00, the Unix epoch, or a camera default such "
        "as 1980-01-01/2000-01-01 00:00:00, or the QuickTime epoch 1904-01-01); it is ignored.",
        "Treat the capture time as unknown; the device clock was probably never set.",
    ),
    "exif-gps-time-disagree": (
        "warning",
        f"The camera clock and the GPS time differ by more than {GPS_TIME_DISAGREE_MINUTES:.0f} "
        "minutes after correcting for the UTC offset.",
        "The camera clock or the inferred time zone may be wrong, or the GPS fix is stale; "
        "prefer the GPS time if the fix is fresh.",
    ),
    "modified-after-capture": (
        "warning",
        "The file's modification date is later than its capture date and the software tag "
        "names an editing application.",
        "Ask the submitter for the camera original; compare with other copies.",
    ),
    "no-capture-time": (
        "info",
        "No usable capture time in the file.",
        "Establish the time from content (shadows, weather, events) or other sources.",
    ),
    "daylight-implausible": (
        "warning",
        f"The image is bright (mean > {BRIGHT_MEAN:.0f}) while the sun was below "
        f"{NIGHT_SUN_DEG:.0f}° at the place and time used, or dark (mean < {DARK_MEAN:.0f}) "
        f"while the sun was above {DAY_SUN_DEG:.0f}°.",
        "Check whether it is indoors, artificial light or an exposure effect; otherwise the "
        "place or time (observed or claimed) is doubtful.",
    ),
    "editing-software": (
        "warning",
        "The Software tag or XMP CreatorTool/history names an editing application.",
        "Editing is not falsification (crops, exposure); ask for the original and compare.",
    ),
    "thumbnail-differs": (
        "warning",
        f"The embedded EXIF thumbnail differs from the main image (PDQ distance > "
        f"{THUMBNAIL_PDQ_THRESHOLD}, in every orientation): the image may have been edited "
        "without regenerating the thumbnail.",
        "Extract the thumbnail (exiftool -b -ThumbnailImage) and compare it with the image.",
    ),
    "metadata-stripped": (
        "info",
        "The file carries almost no metadata, typical of messaging apps and social networks; "
        "not suspicious in itself.",
        "Look for an earlier copy with metadata (ask the submitter, reverse image search).",
    ),
    "extension-mismatch": (
        "warning",
        "The file name's extension does not match the format detected from its bytes.",
        "Usually a renamed or re-exported file; note it and check the file's history.",
    ),
    "image-too-large": (
        "warning",
        "The image was not decoded: decoding it would take more memory than the decode budget "
        "(estimated from its size, mode and bit depth) or it has more pixels than "
        "max_image_pixels. Its metadata was read; there are no perceptual hashes, thumbnail or "
        "brightness for it.",
        "Open the preserved original on a workstation with enough memory; a small file with "
        "huge dimensions is a decompression bomb.",
    ),
    "metadata-malformed": (
        "warning",
        "The EXIF structure is malformed (an IFD loop, an offset outside the EXIF block, a "
        "pointer of the wrong type, or a parser failure); values read through the malformed "
        "part are not used. The image itself was analysed.",
        "Read the metadata with another tool (exiftool -validate -warning) and treat what the "
        "file claims with caution; cameras and editors do not write such structures.",
    ),
    "jpeg-software-tables": (
        "info",
        "The JPEG's quantisation tables are the standard libjpeg tables (quality estimated "
        "exactly) or ffmpeg's, while its EXIF names a camera: consistent with re-encoding by "
        "software after capture with the camera's metadata kept. A signal, not a verdict: "
        f"{SOFTWARE_TABLES_RELIABILITY}",
        "Ask for the camera original; compare the estimated quality and the EXIF thumbnail's "
        "tables (media.compression in the record) with files known to come from that camera.",
    ),
    "jpeg-encoder-identified": (
        "info",
        "The JPEG was written by an encoder its own signature names: ffmpeg (libavcodec's MJPEG "
        "tables or its 'Lavc' comment: typical of a frame taken from a video) or libgd (a "
        f"'gd-jpeg' comment: web applications). {ENCODER_RELIABILITY}",
        "Look for the video or web page the picture was taken from; a still from a video links "
        "to that video's keyframes when both are in the collection.",
    ),
    "c2pa-manifest": (
        "info",
        "The file carries a C2PA (Content Credentials) manifest that the SDK read; the message "
        "says whether it is intact with a signer on no configured trust list ('valid') or "
        "signed by a trusted signer ('trusted'); signer and validation codes are in the "
        "evidence.",
        "Inspect the manifest (c2patool) to read its claimed history; an untrusted signer's "
        "identity is not vouched for by anyone.",
    ),
    "c2pa-manifest-invalid": (
        "warning",
        "The file carries a C2PA manifest (found in its container: JPEG APP11, PNG caBX, "
        "ISO BMFF uuid box, RIFF C2PA chunk, TIFF tag, GIF extension) that did not validate "
        "(changed after signing, a broken signature) or that the SDK could not read (corrupt, "
        "an unknown algorithm, prerelease content); the SDK's error text is in the evidence.",
        "Inspect the manifest's validation errors (c2patool); the file changed after signing, "
        "the credentials are forged, or the manifest was made by a tool the SDK does not know.",
    ),
    "c2pa-manifest-remote": (
        "info",
        "The file points to a C2PA manifest kept online (XMP dcterms:provenance); it was not "
        "fetched (offline by design), so nothing about it is validated. The URL is in the "
        "evidence.",
        "Fetching it tells the URL's owner that someone is examining this file: do so only "
        "from a machine and network that may be seen, then validate it with c2patool.",
    ),
}


def render_findings_doc() -> str:
    """Markdown for docs/findings.md, generated from :data:`FINDING_CODES`."""
    lines = [
        "# Findings",
        "",
        "<!-- Generated from verification/checks/catalogue.py FINDING_CODES; do not edit by hand. Regenerate:",
        "python -c 'from verification.checks import render_findings_doc as r; "
        'open("docs/findings.md", "w").write(r())\' -->',
        "",
        "Findings are signals for an analyst, never verdicts. `critical` means a claim is "
        "contradicted, `warning` needs a look, `info` is context. An item's status is derived "
        "from its findings (`verification.core.findings.derive_status`).",
        "",
        "| Code | Severity | Meaning | What to do |",
        "| --- | --- | --- | --- |",
    ]
    for code, (severity, meaning, action) in FINDING_CODES.items():
        lines.append(f"| `{code}` | {severity} | {_cell(meaning)} | {_cell(action)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
