"""A minimal reference intake, the floor ``evidence ingest`` is compared with.

Per photo, in N processes: read the file once; SHA-256 and MD5; EXIF with exifread
(``details=False``); the 1/8 DCT-scaled JPEG decode; pHash and PDQ of that; one JSON record
written per file. No vault, no ledger, no custody, no duplicates search: what any intake must
at least do to describe a photo.

    .venv/bin/python -m bench.reference OUT_DIR PHOTO... [--workers 2]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from multiprocessing import get_context
from pathlib import Path
from typing import Any


def describe(path: str) -> dict[str, Any]:
    """The reference record of one photo."""
    import exifread
    import imagehash
    import numpy as np
    import pdqhash
    from PIL import Image

    data = Path(path).read_bytes()
    tags = exifread.process_file(io.BytesIO(data), details=False)
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
        image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        small = image.convert("RGB")
    vector, quality = pdqhash.compute(np.asarray(small))
    return {
        "file": Path(path).name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "size": len(data),
        "dimensions": size,
        "exif": {k: str(v) for k, v in tags.items()},
        "phash": str(imagehash.phash(small)),
        "pdq": np.packbits(vector.astype(np.uint8)).tobytes().hex(),
        "pdq_quality": int(quality),
    }


def _one(job: tuple[str, str]) -> None:
    path, out = job
    record = describe(path)
    (Path(out) / f"{record['file']}.json").write_text(json.dumps(record))


def main(argv: list[str] | None = None) -> int:
    """Describe every photo named, in ``--workers`` processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(p, str(args.out)) for p in args.photos]
    with get_context("fork").Pool(args.workers) as pool:
        for _ in pool.imap_unordered(_one, jobs, chunksize=4):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
