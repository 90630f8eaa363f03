"""Tests for verification/duplicates.py: PDQ values, the index, crops, and an accuracy set."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from verification.duplicates import (
    PDQHash,
    PDQIndex,
    confirm_crop,
    find_duplicates,
)
from verification.duplicates.crop import describe_crop
from verification.duplicates.matching import pair_distance

THRESHOLD = 31


def _naive_distance(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


def _random_hashes(rng: np.random.Generator, n: int) -> list[bytes]:
    return [rng.bytes(32) for _ in range(n)]


# --- PDQHash ---------------------------------------------------------------------------------


def test_hamming_distance_equals_naive_popcount() -> None:
    """a - b counts differing bits, symmetric, zero on itself."""
    rng = np.random.default_rng(1)
    for a, b in zip(_random_hashes(rng, 200), _random_hashes(rng, 200), strict=True):
        ha, hb = PDQHash.from_bytes(a), PDQHash.from_bytes(b)
        assert ha - hb == hb - ha == _naive_distance(a, b)
        assert ha - ha == 0


def test_hash_round_trips_through_hex_and_bits() -> None:
    """from_hex(hex()) and from_bits(pdqhash bits) give equal values."""
    bits = np.random.default_rng(2).integers(0, 2, 256)
    h = PDQHash.from_bits(bits)
    assert PDQHash.from_hex(h.hex()) == h
    assert len(h.hex()) == 64


@pytest.mark.parametrize("text", ["abc", "zz" * 32, "00" * 31])
def test_malformed_hash_is_refused(text: str) -> None:
    """Anything but 64 hex digits raises ValueError."""
    with pytest.raises(ValueError):
        PDQHash.from_hex(text)


# --- PDQIndex --------------------------------------------------------------------------------


def test_index_distances_equal_naive_popcount() -> None:
    """Vectorised distances agree with a per-pair popcount, across chunk boundaries."""
    rng = np.random.default_rng(3)
    stored = _random_hashes(rng, 70_000)  # more than one 65,536-row chunk
    index = PDQIndex(capacity=16)  # forces growth
    index.add_many((f"item-{i}", h) for i, h in enumerate(stored[:1000]))
    packed = np.frombuffer(b"".join(stored[1000:]), dtype=np.uint8).reshape(-1, 32)
    index.add_packed([f"item-{i}" for i in range(1000, len(stored))], packed)
    query = rng.bytes(32)
    distances = index.distances(query)
    sample = rng.integers(0, len(stored), 500)
    assert [int(distances[i]) for i in sample] == [
        _naive_distance(stored[i], query) for i in sample
    ]


def test_query_returns_matches_sorted_and_one_per_item() -> None:
    """Keyframes of one item collapse to the best row; results are closest first."""
    base = bytearray(32)
    near = bytes(base[:31]) + b"\x0f"  # 4 bits away
    nearer = bytes(base[:31]) + b"\x01"  # 1 bit away
    far = b"\xff" * 32
    index = PDQIndex()
    index.add("video", near, frame=0)
    index.add("video", nearer, frame=5)
    index.add("photo", bytes(base[:30]) + b"\x03\x03", frame=0)  # 4 bits away
    index.add("other", far)
    matches = index.query(bytes(base), threshold=THRESHOLD)
    assert [(m.item_id, m.distance, m.frame) for m in matches] == [
        ("video", 1, 5),
        ("photo", 4, 0),
    ]


def test_query_threshold_is_inclusive() -> None:
    """A hash exactly at the threshold matches; one bit more does not."""
    index = PDQIndex()
    index.add("at", bytes.fromhex("ff" * 3 + "fe" + "00" * 28))  # 31 bits set
    index.add("beyond", bytes.fromhex("ff" * 4 + "00" * 28))  # 32 bits set
    assert [m.item_id for m in index.query(bytes(32), 31)] == ["at"]


def test_discarded_item_matches_nothing_until_added_again() -> None:
    """discard() forgets an item's rows; adding it back (new hashes) makes it match again."""
    rng = np.random.default_rng(4)
    old, new = rng.bytes(32), rng.bytes(32)
    index = PDQIndex()
    index.add("item", old)
    index.add("other", rng.bytes(32))
    index.discard("item")
    assert index.query(old, THRESHOLD) == []
    assert "item" not in index and index.item_ids == ("other",)
    index.add("item", new)
    assert [m.item_id for m in index.query(new, THRESHOLD)] == ["item"]
    assert index.query(old, THRESHOLD) == []


# --- photo-like test images ------------------------------------------------------------------


def _scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A synthetic photo: gradient sky, random shapes, blur and sensor-like noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, 2 * np.pi)
    t = ((np.cos(angle) * x / width + np.sin(angle) * y / height) + 1) / 2
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    image = Image.fromarray((c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(15, 30))):
        x0, y0, side = (
            int(rng.integers(0, width)),
            int(rng.integers(0, height)),
            rng.integers(20, 200),
        )
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = [x0, y0, int(x0 + side), int(y0 + side * rng.uniform(0.4, 1.6))]
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse(box, fill=color)
        elif shape == 1:
            draw.rectangle(box, fill=color)
        else:
            corners = rng.integers(0, [width, height], (int(rng.integers(3, 7)), 2))
            draw.polygon([(int(a), int(b)) for a, b in corners], fill=color)
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(1.0))).astype(np.int16)
    noisy = blurred + rng.normal(0, 6, blurred.shape).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _reopen(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _strip_exif(image: Image.Image) -> Image.Image:
    exif = Image.Exif()
    exif[0x0131] = "Camera firmware 1.0"  # Software
    with_exif = _encode(image, "JPEG", quality=92, exif=exif.tobytes())
    stripped = _encode(_reopen(with_exif), "JPEG", quality=92)  # re-saved without exif
    assert b"Camera firmware" in with_exif
    assert b"Camera firmware" not in stripped
    return _reopen(stripped)


def _watermark(image: Image.Image) -> Image.Image:
    marked = image.copy()
    width, height = marked.size
    ImageDraw.Draw(marked).text((width - 150, height - 30), "(c) agency 2026", fill="white")
    return marked


def _crop5(image: Image.Image) -> Image.Image:
    width, height = image.size
    return image.crop((width * 5 // 100, height * 5 // 100, width * 95 // 100, height * 95 // 100))


TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resize-50": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "jpeg-q60": lambda im: _reopen(_encode(im, "JPEG", quality=60)),
    "crop-5": _crop5,
    "strip-exif": _strip_exif,
    "watermark": _watermark,
    "png": lambda im: _reopen(_encode(im, "PNG")),
    "flip-horizontal": ImageOps.mirror,
}


def _perceptual(image: Image.Image) -> dict[str, object]:
    """What the media step produces: PDQ, quality and the eight dihedral hashes."""
    pixels = np.asarray(image.convert("RGB"))
    bits, quality = pdqhash.compute(pixels)
    dihedral, _ = pdqhash.compute_dihedral(pixels)
    return {
        "pdq": PDQHash.from_bits(bits).hex(),
        "pdq_quality": int(quality),
        "pdq_dihedral": [PDQHash.from_bits(b).hex() for b in dihedral],
    }


def _bgr(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])


@pytest.fixture(scope="module")
def originals() -> dict[str, Image.Image]:
    return {f"scene-{seed}": _scene(seed) for seed in range(10)}


@pytest.fixture(scope="module")
def collection(originals: dict[str, Image.Image]) -> PDQIndex:
    index = PDQIndex()
    for item, image in originals.items():
        index.add(item, _perceptual(image)["pdq"])  # type: ignore[arg-type]
    return index


def test_mirrored_copy_matches_only_through_dihedral_hashes(
    originals: dict[str, Image.Image], collection: PDQIndex
) -> None:
    """A horizontally flipped copy is far for plain PDQ, near for the dihedral query."""
    mirrored = _perceptual(ImageOps.mirror(originals["scene-3"]))
    assert all(m.item_id != "scene-3" for m in collection.query(mirrored["pdq"], THRESHOLD))  # type: ignore[arg-type]
    matches = collection.query_dihedral(mirrored["pdq_dihedral"], THRESHOLD)  # type: ignore[arg-type]
    assert [(m.item_id, m.transform) for m in matches] == [("scene-3", "flip-horizontal")]


def test_crop_is_confirmed_by_orb_and_distinct_images_are_not(
    originals: dict[str, Image.Image],
) -> None:
    """confirm_crop accepts a 5 % crop (as encoded bytes too) and rejects another scene."""
    cropped = _encode(_crop5(originals["scene-1"]), "JPEG", quality=85)
    same = confirm_crop(cropped, _bgr(originals["scene-1"]))
    other = confirm_crop(cropped, _bgr(originals["scene-2"]))
    assert same.matched
    assert same.inliers >= 25
    assert not other.matched


def test_undecodable_image_is_no_crop_match() -> None:
    """Garbage bytes give a negative CropMatch, not an exception."""
    assert not confirm_crop(b"not an image", b"nor this").matched


def test_low_quality_hash_matches_nothing(collection: PDQIndex) -> None:
    """A flat image's PDQ (quality < 50) is not searched: flat images collide."""
    flat = _perceptual(Image.new("RGB", (640, 480), (90, 90, 90)))
    assert flat["pdq_quality"] < 50  # type: ignore[operator]
    assert find_duplicates(flat, collection) == []


def test_transformed_copies_are_found_and_distinct_images_are_not(
    originals: dict[str, Image.Image], collection: PDQIndex
) -> None:
    """Recall >= 95 % over 7 transformations of 10 scenes; no cross-scene match at all."""
    images = {item: _bgr(image) for item, image in originals.items()}
    found, total, false_matches, kinds = 0, 0, [], {}
    for item, image in originals.items():
        for name, transform in TRANSFORMS.items():
            copy = transform(image)
            results = find_duplicates(
                _perceptual(copy),
                collection,
                threshold=THRESHOLD,
                image=_bgr(copy),
                load_image=images.get,
            )
            total += 1
            found += any(r["item"] == item for r in results)
            false_matches += [(item, name, r["item"]) for r in results if r["item"] != item]
            kinds.setdefault(name, set()).update(r["kind"] for r in results if r["item"] == item)
    recall = found / total
    report = f"recall {found}/{total} = {recall:.1%}; kinds {kinds}; false {false_matches}"
    assert recall >= 0.95, report
    assert false_matches == [], report
    assert kinds["crop-5"] == {"crop-orb"}, report
    assert kinds["flip-horizontal"] == {"near-pdq-dihedral"}, report


def test_every_crop_is_recovered_when_the_case_items_are_candidates(
    originals: dict[str, Image.Image], collection: PDQIndex
) -> None:
    """Crops the PDQ pre-filter misses (distance > 96) are recovered from case candidates."""
    images = {item: _bgr(image) for item, image in originals.items()}
    recovered = []
    for item, image in originals.items():
        copy = _crop5(image)
        results = find_duplicates(
            _perceptual(copy),
            collection,
            image=_bgr(copy),
            load_image=images.get,
            crop_candidates=list(originals),
        )
        assert [r["item"] for r in results] == [item]
        recovered.append(results[0]["kind"])
    assert recovered == ["crop-orb"] * len(originals)


def test_own_image_is_read_only_when_a_crop_is_to_be_checked(
    originals: dict[str, Image.Image], collection: PDQIndex
) -> None:
    """Given as a function, the item's image is read once when there is a crop candidate, never
    when there is none; when it cannot be read, no crop is checked and the PDQ matches stand."""
    images = {item: _bgr(image) for item, image in originals.items()}
    item, image = next(iter(originals.items()))
    copy = _crop5(image)
    reads: list[str] = []

    def read() -> Any:
        reads.append("read")
        return _bgr(copy)

    kw: dict[str, Any] = {"load_image": images.get, "crop_candidates": list(originals)}
    lazy = find_duplicates(_perceptual(copy), collection, image=read, **kw)
    assert reads == ["read"]
    assert lazy == find_duplicates(_perceptual(copy), collection, image=_bgr(copy), **kw)
    assert [(r["item"], r["kind"]) for r in lazy] == [(item, "crop-orb")]
    lone = PDQIndex()
    lone.add("unrelated", np.random.default_rng(3).bytes(32))
    assert find_duplicates(_perceptual(copy), lone, image=read, load_image=images.get) == []
    assert reads == ["read"]  # no candidate: not read
    unreadable = find_duplicates(_perceptual(copy), collection, image=lambda: None, **kw)
    assert unreadable == find_duplicates(_perceptual(copy), collection) == []


def test_distinct_originals_do_not_match_each_other(
    originals: dict[str, Image.Image], collection: PDQIndex
) -> None:
    """Each original finds only itself, by PDQ or by ORB."""
    images = {item: _bgr(image) for item, image in originals.items()}
    for item, image in originals.items():
        results = find_duplicates(
            _perceptual(image),
            collection,
            exclude=item,
            image=images[item],
            load_image=images.get,
            crop_candidates=[i for i in originals if i != item],
        )
        assert results == [], f"{item}: {results}"


def test_video_keyframes_are_queried() -> None:
    """A video's keyframe hashes find an item that matches one frame only."""
    rng = np.random.default_rng(5)
    frame_hash = rng.bytes(32)
    index = PDQIndex()
    index.add("still", frame_hash)
    perceptual = {
        "pdq": rng.bytes(32).hex(),
        "pdq_quality": 100,
        "keyframes": [{"pdq": rng.bytes(32).hex()}, {"pdq": frame_hash.hex()}],
    }
    assert find_duplicates(perceptual, index) == [
        {
            "item": "still",
            "distance": 0,
            "kind": "near-pdq",
            "keyframe": 1,
            "other_keyframe": None,
            "transform": None,
        }
    ]


# --- symmetry (issue 14) ---------------------------------------------------------------------


def _thumb(image: Image.Image) -> bytes:
    small = image.copy()
    small.thumbnail((512, 512))
    return _encode(small, "JPEG", quality=85)


def test_crop_check_gives_the_same_answer_both_ways(originals: dict[str, Image.Image]) -> None:
    """confirm_crop(a, b) is confirm_crop(b, a) with the roles swapped: crops, a low-texture
    picture and its crop (near the threshold), and unrelated pictures."""
    low = originals["scene-4"].filter(ImageFilter.GaussianBlur(5))
    pairs = [(_thumb(_crop5(im)), _thumb(im)) for im in originals.values()]
    pairs.append((_thumb(low.crop((0, 0, 590, 440))), _thumb(low)))
    pairs.append((_thumb(originals["scene-1"]), _thumb(originals["scene-2"])))
    answers = []
    for a, b in pairs:
        forward, backward = confirm_crop(a, b), confirm_crop(b, a)
        assert forward == backward.swapped()
        answers.append(forward.matched)
    assert answers[:-2] == [True] * len(originals)
    assert answers[-1] is False


def test_crop_geometry_says_which_part_was_kept(originals: dict[str, Image.Image]) -> None:
    """A crop keeping the top-left 92 % of each side is "a 85 % crop of the top-left"."""
    image = originals["scene-2"]
    width, height = image.size
    kept = image.crop((0, 0, round(width * 0.92), round(height * 0.92)))
    result = confirm_crop(_thumb(kept), _thumb(image))
    assert result.matched and result.geometry is not None
    assert (result.geometry.inner, result.geometry.position) == ("a", "top-left")
    assert result.geometry.area == pytest.approx(0.92**2, abs=0.03)
    assert result.geometry.box[0] == pytest.approx(0, abs=0.02)
    assert result.geometry.box[2] == pytest.approx(0.92, abs=0.02)
    assert describe_crop(result.geometry, "a") == (
        f"this item is a {round(result.geometry.area * 100)} % crop of the top-left of the other"
    )
    assert describe_crop(result.geometry, "b").startswith("the other item is a ")


@pytest.mark.parametrize(
    "transform",
    [ImageOps.mirror, ImageOps.flip, lambda im: im.rotate(90, expand=True)],
    ids=["mirror", "flip", "rotate-90"],
)
def test_pair_distance_is_the_same_from_either_item(
    originals: dict[str, Image.Image], transform: Callable[[Image.Image], Image.Image]
) -> None:
    """pair_distance(a, b) is pair_distance(b, a) swapped: the same distance, the inverse
    transform, for every scene and its re-encoded transformed copy."""
    for image in originals.values():
        copy = _reopen(_encode(transform(image), "JPEG", quality=70))
        a, b = _perceptual(image), _perceptual(copy)
        forward, backward = pair_distance(a, b), pair_distance(b, a)
        assert forward is not None and backward is not None
        assert forward == backward.swapped()
        assert forward.distance <= THRESHOLD and forward.transform is not None


def test_rotated_copy_is_named_by_the_inverse_transform_from_the_other_side(
    originals: dict[str, Image.Image],
) -> None:
    """A copy rotated 90° counter-clockwise: the original turns into it by rotate-90-ccw, the
    copy back into the original by rotate-90-cw."""
    image = originals["scene-5"]
    copy = image.rotate(90, expand=True)  # Pillow rotates counter-clockwise
    forward = pair_distance(_perceptual(image), _perceptual(copy))
    assert forward is not None
    assert (forward.transform, forward.swapped().transform) == ("rotate-90-ccw", "rotate-90-cw")


def test_video_frames_match_a_photo_with_the_keyframe_named() -> None:
    """A photo equal to a video's third keyframe is at distance 0 through keyframe 2, both ways."""
    rng = np.random.default_rng(6)
    frames = [rng.bytes(32).hex() for _ in range(4)]
    video = {"pdq": frames[0], "keyframes": [{"pdq": f, "quality": 100} for f in frames]}
    photo = {"pdq": frames[2], "pdq_quality": 100, "pdq_dihedral": [frames[2]]}
    forward = pair_distance(photo, video)
    assert forward is not None
    assert (forward.distance, forward.keyframe, forward.other_keyframe) == (0, None, 2)
    assert pair_distance(video, photo) == forward.swapped()


def test_low_quality_frames_match_nothing_from_either_side() -> None:
    """A hash below the PDQ quality floor gives no distance, whichever item asks."""
    rng = np.random.default_rng(7)
    h = rng.bytes(32).hex()
    flat = {"pdq": h, "pdq_quality": 10}
    good = {"pdq": h, "pdq_quality": 90}
    assert pair_distance(flat, good) is None and pair_distance(good, flat) is None
