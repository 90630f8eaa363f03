"""Locating C2PA data from the container alone: each embedding the spec names, hostile headers.

Every input is built here byte by byte (or with Pillow), following the C2PA specification's
"Embedding manifests into assets" section; files signed by the SDK itself are checked in
test_c2pa.py.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, TiffImagePlugin

from verification.media.c2pa_locate import C2PA_UUID, XMP_UUID, Embedding, locate, provenance

STORE_TYPE = bytes.fromhex("6332706100110010800000aa00389b71")  # "c2pa" + ISO suffix
OTHER_TYPE = bytes.fromhex("6a736f6e00110010800000aa00389b71")  # a JSON content box type
REMOTE = "https://manifests.example.org/store.c2pa"


def box(kind: bytes, payload: bytes) -> bytes:
    """An ISO BMFF / JUMBF box: 32-bit size, type, payload."""
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def jumbf(label: bytes = b"c2pa", content_type: bytes = STORE_TYPE) -> bytes:
    """A JUMBF superbox whose description names it; its content is garbage."""
    toggles = b"\x03" if label else b"\x01"
    description = box(b"jumd", content_type + toggles + (label + b"\x00" if label else b""))
    return box(b"jumb", description + b"\xde\xad\xbe\xef" * 16)


def xmp(reference: str = REMOTE) -> bytes:
    """An XMP packet naming a provenance reference, as C2PA tools write it."""
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        f'xmlns:dcterms="http://purl.org/dc/terms/" dcterms:provenance="{reference}"/>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()


def _pillow(fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 140, 200)).save(out, fmt, **params)
    return out.getvalue()


def jpeg(*segments: tuple[int, bytes]) -> bytes:
    """A plain JPEG with extra (marker, payload) segments right after SOI."""
    data = _pillow("JPEG")
    extra = b"".join(
        bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body for marker, body in segments
    )
    return data[:2] + extra + data[2:]


def app11(payload: bytes, sequence: int = 1) -> tuple[int, bytes]:
    """A JPEG XT APP11 segment: common identifier JP, box instance, sequence number, box."""
    return 0xEB, b"JP" + b"\x02\x11" + struct.pack(">I", sequence) + payload


def png(kind: bytes, data: bytes) -> bytes:
    """A plain PNG with one extra chunk right after IHDR."""
    plain = _pillow("PNG")
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return plain[:33] + chunk + plain[33:]


def mp4(*extra: bytes) -> bytes:
    """A skeleton MP4 (ftyp, extra top-level boxes, moov, mdat)."""
    ftyp = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
    return ftyp + b"".join(extra) + box(b"moov", box(b"mvhd", bytes(100))) + box(b"mdat", bytes(8))


def webp(kind: bytes, data: bytes) -> bytes:
    """A plain WebP with one extra RIFF chunk appended (the RIFF size fixed up)."""
    plain = _pillow("WEBP", lossless=True)
    body = plain[12:] + kind + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def gif(identifier: bytes, data: bytes, *, raw: bool = False) -> bytes:
    """A plain GIF with one application extension after the colour table.

    ``raw`` writes ``data`` unblocked, as Adobe writes XMP, closed by a 258-byte trailer whose
    bytes read as sub-block sizes that end the run.
    """
    plain = _pillow("GIF")
    header_end = 13 + (3 * (2 << (plain[10] & 7)) if plain[10] & 0x80 else 0)
    if raw:
        blocks = data + b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    else:
        parts = [data[i : i + 255] for i in range(0, len(data), 255)]
        blocks = b"".join(bytes([len(p)]) + p for p in parts) + b"\x00"
    extension = b"!\xff\x0b" + identifier + blocks
    return plain[:header_end] + extension + plain[header_end:]


def tiff(tag: int, data: bytes) -> bytes:
    """A plain TIFF with one extra UNDEFINED tag in its first IFD."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[tag] = data
    ifd.tagtype[tag] = 7
    return _pillow("TIFF", tiffinfo=ifd)


def _locate(data: bytes) -> Embedding:
    return locate(io.BytesIO(data))


EMBEDDED = [
    pytest.param(jpeg(app11(jumbf())), "jpeg", "JPEG APP11 JUMBF", id="jpeg-app11"),
    pytest.param(png(b"caBX", jumbf()), "png", "PNG caBX chunk", id="png-caBX"),
    pytest.param(
        mp4(box(b"uuid", C2PA_UUID + bytes(4) + b"manifest\x00" + bytes(8))),
        "bmff",
        "ISO BMFF uuid box",
        id="bmff-uuid",
    ),
    pytest.param(webp(b"C2PA", jumbf()), "riff", "RIFF C2PA chunk", id="webp-C2PA"),
    pytest.param(tiff(0xCD41, jumbf()), "tiff", "TIFF tag 0xCD41", id="tiff-cd41"),
    pytest.param(
        gif(b"C2PA_GIF\x01\x00\x00", jumbf()),
        "gif",
        "GIF C2PA_GIF application extension",
        id="gif-C2PA_GIF",
    ),
]


@pytest.mark.parametrize(("data", "container", "store"), EMBEDDED)
def test_embedded_store_is_found_where_the_spec_puts_it(
    data: bytes, container: str, store: str
) -> None:
    """Each format's manifest-store location is recognised from its container."""
    found = _locate(data)
    assert (found.container, found.store, found.complete) == (container, store, True)
    assert found.found and found.remote_url is None


@pytest.mark.parametrize(
    ("data", "container"),
    [
        pytest.param(_pillow("JPEG"), "jpeg", id="jpeg"),
        pytest.param(_pillow("PNG"), "png", id="png"),
        pytest.param(mp4(box(b"uuid", bytes(16) + b"other")), "bmff", id="bmff-other-uuid"),
        pytest.param(_pillow("WEBP", lossless=True), "riff", id="webp"),
        pytest.param(_pillow("TIFF"), "tiff", id="tiff"),
        pytest.param(_pillow("GIF"), "gif", id="gif"),
    ],
)
def test_container_without_c2pa_data_is_walked_to_its_end(data: bytes, container: str) -> None:
    """A plain file of each format: walked completely, nothing found."""
    assert _locate(data) == Embedding(container, None, None, complete=True)


@pytest.mark.parametrize(
    ("label", "content_type", "expected"),
    [
        (b"c2pa", OTHER_TYPE, True),
        (b"", STORE_TYPE, True),
        (b"jp2c", OTHER_TYPE, False),
        (b"", OTHER_TYPE, False),
    ],
    ids=["label-only", "uuid-only", "other-jumbf", "unlabelled-other"],
)
def test_jumbf_counts_as_c2pa_by_its_label_or_its_content_type(
    label: bytes, content_type: bytes, expected: bool
) -> None:
    """The description's label "c2pa" or its c2pa content type marks the store; others do not."""
    found = _locate(jpeg(app11(jumbf(label, content_type))))
    assert (found.store is not None) is expected
    assert found.complete


def test_app11_without_the_jpeg_xt_identifier_is_not_c2pa() -> None:
    """An APP11 segment not starting with "JP" is some other application's data."""
    found = _locate(jpeg((0xEB, b"XX\x02\x11\x00\x00\x00\x01" + jumbf())))
    assert found.store is None and found.complete


def test_continuation_segments_of_a_store_do_not_confuse_the_walk() -> None:
    """A store split over APP11 segments (LBox/TBox repeated) is found once, walk complete."""
    store = jumbf() * 3
    head = store[:8]
    segments = [app11(store[:40]), app11(head + store[40:80], 2), app11(head + store[80:], 3)]
    found = _locate(jpeg(*segments))
    assert (found.store, found.complete) == ("JPEG APP11 JUMBF", True)


REMOTE_REFERENCES = [
    pytest.param(jpeg((0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp())), "jpeg", id="jpeg"),
    pytest.param(png(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp()), "png", id="png"),
    pytest.param(mp4(box(b"uuid", XMP_UUID + xmp())), "bmff", id="bmff"),
    pytest.param(webp(b"XMP ", xmp()), "riff", id="webp"),
    pytest.param(tiff(700, xmp()), "tiff", id="tiff"),
    pytest.param(gif(b"XMP DataXMP", xmp()), "gif", id="gif-blocks"),
    pytest.param(gif(b"XMP DataXMP", xmp(), raw=True), "gif", id="gif-adobe-raw"),
]


@pytest.mark.parametrize(("data", "container"), REMOTE_REFERENCES)
def test_remote_manifest_reference_is_read_from_the_xmp(data: bytes, container: str) -> None:
    """dcterms:provenance pointing online is a remote manifest, wherever the format keeps XMP."""
    found = _locate(data)
    assert (found.container, found.store, found.remote_url) == (container, None, REMOTE)
    assert found.found and found.complete


def test_reference_into_the_file_is_not_a_remote_manifest() -> None:
    """self#jumbf=... points to the embedded store, not online."""
    own = "self#jumbf=c2pa/urn:c2pa:1/c2pa.claim"
    found = _locate(jpeg((0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp(own))))
    assert (found.reference, found.remote_url, found.found) == (own, None, False)


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (b'dcterms:provenance="https://a.example/m?x=1&amp;y=2"', "https://a.example/m?x=1&y=2"),
        (b"dcterms:provenance = 'https://a.example/m'", "https://a.example/m"),
        (b"<dcterms:provenance> https://a.example/m </dcterms:provenance>", "https://a.example/m"),
        (b'dcterms:provenance="https://a.example/\x07m\n"', "https://a.example/m"),
        (b'dcterms:provenance=""', None),
        (b"no reference here", None),
    ],
    ids=["attribute-entity", "single-quotes", "element", "control-chars", "empty", "none"],
)
def test_provenance_value_is_decoded_and_cleaned(packet: bytes, expected: str | None) -> None:
    """Attribute or element form, XML entities decoded, control characters dropped."""
    assert provenance(packet) == expected


def test_unreadable_provenance_mention_leaves_a_jpeg_incomplete() -> None:
    """XMP that names a provenance in a form not understood: the SDK must decide."""
    body = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>other:provenance</x:xmpmeta>"
    assert not _locate(jpeg((0xE1, body))).complete


HOSTILE = [
    pytest.param(b"\xff\xd8\xff\xe1\x00\x01", id="jpeg-length-1"),
    pytest.param(b"\xff\xd8\xff\xeb\xff\xffJP", id="jpeg-segment-past-eof"),
    pytest.param(b"\xff\xd8\xff" + b"\xfe\x00\x02\xff" * 5000, id="jpeg-too-many-segments"),
    pytest.param(_pillow("PNG")[:33] + b"\xff\xff\xff\xffIDAT", id="png-huge-chunk"),
    pytest.param(_pillow("PNG")[:40], id="png-truncated"),
    pytest.param(
        box(b"ftyp", b"isom") + struct.pack(">I", 1) + b"free" + b"\xff" * 8,
        id="bmff-huge-largesize",
    ),
    pytest.param(box(b"ftyp", b"isom") + box(b"free", b"") * 5000, id="bmff-too-many-boxes"),
    pytest.param(b"RIFF\xff\xff\xff\xffWEBPVP8L\xff\xff\xff\x7f", id="riff-huge-chunk"),
    pytest.param(b"II*\x00\xff\xff\xff\x7f", id="tiff-ifd-past-eof"),
    pytest.param(b"MM\x00*\x00\x00\x00\x08\xff\xff", id="tiff-entries-past-eof"),
    pytest.param(b"II+\x00\x08\x00\x00\x00", id="bigtiff"),
    pytest.param(b"GIF89a\x01\x00\x01\x00\x80\x00\x00", id="gif-cut-in-colour-table"),
    pytest.param(
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00!\xff\x0bC2PA_GIF\x01\x00\x00\x05ab",
        id="gif-cut-in-sub-blocks",
    ),
    pytest.param(b"GIF89a\x01\x00\x01\x00\x00\x00\x00?", id="gif-unknown-block"),
]


@pytest.mark.parametrize("data", HOSTILE)
def test_hostile_headers_end_the_walk_incomplete_without_raising(data: bytes) -> None:
    """Cut, oversized, looping or unknown structures: no exception, walk marked incomplete."""
    found = _locate(data)
    assert found.container is not None
    assert not found.complete


def test_store_seen_before_a_broken_header_is_kept() -> None:
    """A GIF cut after its C2PA extension still reports the store (the walk stops there)."""
    data = gif(b"C2PA_GIF\x01\x00\x00", jumbf())
    cut = data[: data.index(b"C2PA_GIF") + 60]
    found = _locate(cut)
    assert (found.store, found.complete) == ("GIF C2PA_GIF application extension", False)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 64, b"%PDF-1.7", b"\x1a\x45\xdf\xa3webm"],
    ids=["empty", "zeros", "pdf", "webm"],
)
def test_files_of_other_formats_are_not_walked(data: bytes) -> None:
    """Nothing is claimed about a container that is not walked."""
    assert _locate(data) == Embedding()
