"""Hostile and broken inputs for every loader a person can feed: images (uploads, ZIPs, folders),
predictions files, session bundles, concept lists and model folders.

Each ``Case`` builds its own files into a folder it is given and returns a *call spec*, a dict
that ``tests/hostile/runner.py`` turns into one loader call in a child process with a memory cap
and a time limit. Builders are cheap (well under 2 s, files under ~25 MB on disk, except the one
50 MB CSV header the suite asks for): bombs are made by repeating one fully flushed deflate block,
so a 3.5 GB member costs a few MB and no RAM. Anything pickled carries a *canary*: unpickling it
creates a file in the case's canary folder (``canary_dir``), which the runner checks.

Call specs (``call`` key): ``zip`` (path), ``files`` (files: [[name, path]], labels_csv: path),
``folder`` (path), ``predictions`` (path, filename, ids, classes, kwargs), ``bundle`` (path),
``concepts`` (path, filename), ``hf`` (path: hf:FOLDER teacher), ``clip`` (path: ClipEncoder).
Optional checks: ``expect_size`` [w, h] of image 0, ``expect_classes``, ``expect_names`` (concept
names that must be present), ``require_note`` (values read as logits must say so).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pickle
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

GB = 1024**3
MB = 1024**2


@dataclass(frozen=True)
class Case:
    """One hostile input. ``expect``: "ok" (must load, maybe skipping items), "refused" (must raise
    an ``InfiError``) or "either". ``valid_items``: good items that must be kept when it loads
    (images, prediction rows, concepts). ``skipped``: names that must be listed as skipped."""

    name: str
    category: str
    build: Callable[[Path], dict]
    valid_items: int | None = None
    expect: str = "ok"
    skipped: tuple[str, ...] = ()
    max_seconds: float | None = None  # "refused quickly": slower than this is a problem


CASES: list[Case] = []


def case(name: str, category: str, build: Callable[[Path], dict], valid_items: int | None = None,
         expect: str = "ok", skipped: Iterable[str] = (), max_seconds: float | None = None) -> None:
    CASES.append(Case(name, category, build, valid_items, expect, tuple(skipped), max_seconds))


# --- canaries and shared fixtures ---------------------------------------------------------------


def canary_dir(folder: Path) -> Path:
    """Where a case's pickles drop their canary file when someone unpickles them."""
    return folder.parent / "canary"


class _Canary:
    """Unpickling this opens (creates) a file: no code of ours needs to run for it to fire."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_pickle(folder: Path, tag: str) -> bytes:
    return pickle.dumps({"state_dict": {"weight": _Canary(canary_dir(folder) / tag)}}, protocol=2)


_FIXTURE_DIR: Path | None = None


def fixture_dir() -> Path:
    """Shared, lazily built inputs (a real bundle, tiny model folders); the runner points
    ``INFI_HOSTILE_FIXTURES`` at one folder per run, shared by its workers."""
    global _FIXTURE_DIR
    env = os.environ.get("INFI_HOSTILE_FIXTURES")
    if env:
        return Path(env)
    if _FIXTURE_DIR is None:
        _FIXTURE_DIR = Path(tempfile.mkdtemp(prefix="infi-hostile-fixtures-"))
    return _FIXTURE_DIR


def fixture(name: str, make: Callable[[Path], None]) -> Path:
    """``make(path)`` once per run (file lock across processes), then the cached path."""
    root = fixture_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            tmp = root / f".{name}.{os.getpid()}.tmp"
            make(tmp)
            os.rename(tmp, target)
    return target


# --- bytes builders -------------------------------------------------------------------------


def noise(size: tuple[int, int] = (32, 32), seed: int = 0) -> Image.Image:
    w, h = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def good_images() -> dict[str, bytes]:
    """One small image per format Infi accepts."""
    img = noise()
    return {"good.png": encode(img, "PNG"), "good.jpg": encode(img, "JPEG", quality=90),
            "good.gif": encode(img.convert("P"), "GIF"), "good.webp": encode(img, "WEBP"),
            "good.bmp": encode(img, "BMP"), "good.tiff": encode(img, "TIFF")}


def good_png(seed: int = 1) -> bytes:
    return encode(noise(seed=seed), "PNG")


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def png_from_chunks(chunks: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(t, d) for t, d in chunks)


def png_idat_patched(patch: Callable[[bytes], bytes]) -> bytes:
    """A noisy PNG whose (single, joined) IDAT stream is rewritten by ``patch``; every chunk CRC is
    recomputed, so only the zlib layer is broken."""
    chunks = png_chunks(encode(noise(seed=3), "PNG"))
    idat = b"".join(d for t, d in chunks if t == b"IDAT")
    head = [(t, d) for t, d in chunks if t not in (b"IDAT", b"IEND")]
    return png_from_chunks([*head, (b"IDAT", patch(idat)), (b"IEND", b"")])


def deflate_repeat(block: bytes, count: int, tail: bytes = b"") -> list[bytes]:
    """Raw deflate of ``block * count + tail`` without building it: after a full flush the
    compressor forgets its history, so each further copy of the block compresses to the same
    bytes and is repeated by reference."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = co.compress(block) + co.flush(zlib.Z_FULL_FLUSH)
    rest = [co.compress(block) + co.flush(zlib.Z_FULL_FLUSH)] if count > 1 else []
    return [first, *(rest * (count - 1)), co.compress(tail) + co.flush(zlib.Z_FINISH)]


def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib's crc32_combine: the CRC of A+B from CRC(A), CRC(B) and len(B)."""
    if len2 <= 0:
        return crc1
    one_bit = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    operator = _gf2_square(_gf2_square(_gf2_square(one_bit)))  # ... for one zero byte
    while len2:  # apply the operator for each set bit of len2, squaring it as the bits go up
        if len2 & 1:
            crc1 = _gf2_times(operator, crc1)
        len2 >>= 1
        operator = _gf2_square(operator)
    return crc1 ^ crc2


def crc32_repeat(block: bytes, count: int, tail: bytes = b"") -> int:
    """CRC-32 of ``block * count + tail`` by doubling, without building it."""
    acc, power, plen = 0, zlib.crc32(block), len(block)
    while count:
        if count & 1:
            acc = crc32_combine(acc, power, plen)
        power = crc32_combine(power, power, plen)
        plen *= 2
        count >>= 1
    return crc32_combine(acc, zlib.crc32(tail), len(tail))


def png_repeated_rows(width: int, height: int, bit_depth: int, color_type: int, row: bytes) -> bytes:
    """A PNG of ``height`` identical rows (filter 0), however large, from a few MB of IDAT."""
    raw_row = b"\0" + row
    per_block = max(1, (2 * MB) // len(raw_row))
    count, extra = divmod(height, per_block)
    block, tail = raw_row * per_block, raw_row * extra
    deflated = deflate_repeat(block, count, tail) if count else deflate_repeat(tail, 1)[1:]
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(block, adler)
    adler = zlib.adler32(tail, adler)
    stream = b"\x78\xda" + b"".join(deflated) + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return png_from_chunks([(b"IHDR", ihdr), (b"IDAT", stream), (b"IEND", b"")])


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF0 header is patched to claim ``width``×``height``."""
    data = bytearray(encode(noise(), "JPEG"))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def bmp_with_size(width: int, height: int) -> bytes:
    data = bytearray(encode(noise(), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def exif_rotated_jpeg() -> bytes:
    """40×20 pixels stored, EXIF orientation 6 (rotate 90° on display): upright it is 20×40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(noise((40, 20), seed=5), "JPEG", exif=exif.tobytes())


def ztxt_bomb_png() -> bytes:
    """A good PNG with a zTXt chunk that inflates to 512 MB of zeros."""
    chunks = png_chunks(good_png(seed=7))
    text = b"Comment\0\0" + b"\x78\xda" + b"".join(deflate_repeat(bytes(16 * MB), 32)) + \
        struct.pack(">I", zlib.adler32(b"", 1))  # a wrong Adler-32: never reached before the cap
    return png_from_chunks([chunks[0], (b"zTXt", text), *chunks[1:]])


def many_frames_gif(frames: int = 2000) -> bytes:
    imgs = [Image.new("P", (4, 4), i % 200) for i in range(frames)]
    return encode(imgs[0], "GIF", save_all=True, append_images=imgs[1:])


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- raw ZIP writer: full control over flags, sizes, CRCs and attributes --------------------


@dataclass
class Member:
    name: str
    payload: list[bytes]  # the bytes stored for the member (compressed when method is 8)
    crc: int
    file_size: int
    method: int = 0
    flags: int = 0
    external_attr: int = 0o100644 << 16
    cd_file_size: int | None = None  # what the central directory claims, when it lies

    @property
    def compress_size(self) -> int:
        return sum(len(p) for p in self.payload)


def stored(name: str, data: bytes, **kw) -> Member:
    return Member(name, [data], zlib.crc32(data), len(data), **kw)


def deflated(name: str, data: bytes, **kw) -> Member:
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return Member(name, [co.compress(data) + co.flush()], zlib.crc32(data), len(data), method=8, **kw)


def zeros_member(name: str, size: int, block: int = 16 * MB, **kw) -> Member:
    """``size`` bytes of zeros (a multiple of 1 MB), deflated by block repetition."""
    block = min(block, size)
    count, rest = divmod(size, block)
    return Member(name, deflate_repeat(bytes(block), count, bytes(rest)),
                  crc32_repeat(bytes(block), count, bytes(rest)), size, method=8, **kw)


def raw_zip(path: Path, members: list[Member]) -> Path:
    """Write a ZIP (no ZIP64: every size under 4 GiB) exactly as described."""
    central = []
    with open(path, "wb") as fh:
        for m in members:
            name = m.name.encode("utf-8")
            flags = m.flags | (0x800 if not m.name.isascii() else 0)
            offset = fh.tell()
            fh.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, m.method, 0, 0x21, m.crc,
                                 m.compress_size, m.file_size, len(name), 0) + name)
            for part in m.payload:
                fh.write(part)
            size = m.file_size if m.cd_file_size is None else m.cd_file_size
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20, flags, m.method,
                                       0, 0x21, m.crc, m.compress_size, size, len(name), 0, 0, 0, 0,
                                       m.external_attr, offset) + name)
        start = fh.tell()
        fh.write(b"".join(central))
        fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), fh.tell() - start,
                             start, 0))
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


def five_good() -> dict[str, bytes]:
    return {f"{'cat' if i % 2 else 'dog'}/ok_{i}.png": good_png(seed=10 + i) for i in range(5)}


# --- images: uploads (from_files) ---------------------------------------------------------------


def files_spec(folder: Path, files: dict[str, bytes], labels_csv: bytes | None = None, **checks) -> dict:
    entries = []
    for i, (name, blob) in enumerate(files.items()):
        entries.append([name, str(write(folder, f"upload_{i}", blob))])
    csv_path = str(write(folder, "labels.csv", labels_csv)) if labels_csv is not None else None
    return {"call": "files", "files": entries, "labels_csv": csv_path, **checks}


def _good_alone(name: str, make: Callable[[], bytes], **checks) -> Callable[[Path], dict]:
    return lambda folder: files_spec(folder, {name: make()}, **checks)


def _gray16(size: int) -> Image.Image:
    return Image.fromarray(np.linspace(0, 65535, size * size).astype(np.uint16).reshape(size, size))


def _palette_transparent() -> bytes:
    img = noise().convert("P")
    return encode(img, "PNG", transparency=0)


def _animated_gif() -> bytes:
    frames = [noise(seed=s).convert("P") for s in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


GOOD_ALONE: dict[str, Callable[[], bytes]] = {
    **{name: (lambda n=name: good_images()[n]) for name in good_images()},
    "rgba.png": lambda: encode(noise().convert("RGBA"), "PNG"),
    "palette_transparent.png": _palette_transparent,
    "gray_alpha.png": lambda: encode(noise().convert("LA"), "PNG"),
    "gray16.png": lambda: encode(_gray16(32), "PNG"),
    "cmyk.jpg": lambda: encode(noise().convert("CMYK"), "JPEG"),
    "float32.tiff": lambda: encode(Image.fromarray(np.random.default_rng(0).random((32, 32), np.float32), "F"),
                                   "TIFF"),
    "bilevel_g4.tiff": lambda: encode(noise().convert("1"), "TIFF", compression="group4"),
    "animated.gif": _animated_gif,
    "progressive.jpg": lambda: encode(noise(), "JPEG", progressive=True),
    "one_pixel.png": lambda: encode(noise((1, 1)), "PNG"),
    "wide_2000x50.png": lambda: encode(noise((2000, 50)), "PNG"),
}

for _name, _make in GOOD_ALONE.items():
    case(f"image_good_{_name.replace('.', '_')}", "images", _good_alone(_name, _make), valid_items=1)

case("image_exif_rotated_jpeg", "images", _good_alone("rotated.jpg", exif_rotated_jpeg, expect_size=[20, 40]),
     valid_items=1)


def _truncated(fmt_bytes: Callable[[], bytes]) -> Callable[[], bytes]:
    return lambda: (b := fmt_bytes())[: len(b) // 2]


def float_tiff(width: int, height: int, rows_per_strip: int = 100) -> bytes:
    """A float32 (mode F) TIFF of identical rows spanning a huge range, Deflate-compressed strip by
    strip; one strip is compressed once and written ``height / rows_per_strip`` times."""
    row = np.linspace(-1e30, 3e38, width, dtype="<f4").tobytes()
    strip = zlib.compress(row * rows_per_strip, 6)
    strips = -(-height // rows_per_strip)
    data_start = 8
    ifd_at = data_start + len(strip) * strips
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 32), (259, 3, 1, 8), (262, 3, 1, 1),
            (273, 4, strips, None), (277, 3, 1, 1), (278, 4, 1, rows_per_strip), (279, 4, strips, None),
            (339, 3, 1, 3)]
    arrays_at = ifd_at + 2 + 12 * len(tags) + 4
    offsets = struct.pack(f"<{strips}I", *(data_start + i * len(strip) for i in range(strips)))
    counts = struct.pack(f"<{strips}I", *([len(strip)] * strips))
    # the last strip holds fewer rows: libtiff reads what it needs from it
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        if tag == 273:
            value = arrays_at
        elif tag == 279:
            value = arrays_at + len(offsets)
        ifd += struct.pack("<HHII", tag, kind, count, value) if kind == 4 else \
            struct.pack("<HHIHH", tag, kind, count, value, 0)
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_at) + strip * strips + ifd + offsets + counts


def _short_idat(idat: bytes) -> bytes:
    return idat[: len(idat) // 2]


HOSTILE_IMAGES: dict[str, tuple[Callable[[], bytes], str, float | None]] = {
    # name -> (bytes, expectation alone, max seconds); "ok" images must also be kept beside others
    "truncated.png": (_truncated(lambda: encode(noise(seed=2), "PNG")), "refused", None),
    "truncated.jpg": (_truncated(lambda: encode(noise(seed=2), "JPEG")), "refused", None),
    "truncated.webp": (_truncated(lambda: encode(noise(seed=2), "WEBP")), "refused", None),
    "truncated.tiff": (_truncated(lambda: encode(noise(seed=2), "TIFF")), "refused", None),
    "truncated.bmp": (_truncated(lambda: encode(noise(seed=2), "BMP")), "refused", None),
    "idat_invalid_block.png": (lambda: png_idat_patched(lambda d: d[:2] + b"\xff" + d[3:]), "refused", None),
    "idat_bad_zlib_header.png": (lambda: png_idat_patched(lambda d: b"\x00\x00" + d[2:]), "refused", None),
    "idat_short_stream.png": (lambda: png_idat_patched(_short_idat), "refused", None),
    "gray16_9000x9000.png": (lambda: png_repeated_rows(9000, 9000, 16, 0, bytes(18000)), "refused", 5),
    "bomb_30000x30000_1bit.png": (lambda: png_repeated_rows(30000, 30000, 1, 0, bytes(3750)), "refused", 5),
    "jpeg_claims_65000x65000.jpg": (lambda: jpeg_with_size(65000, 65000), "refused", 5),
    "bmp_claims_30000x30000.bmp": (lambda: bmp_with_size(30000, 30000), "refused", 5),
    "zero_width.png": (lambda: png_from_chunks([(b"IHDR", struct.pack(">IIBBBBB", 0, 32, 8, 2, 0, 0, 0)),
                                                (b"IEND", b"")]), "refused", None),
    "float32_6000x6000.tiff": (lambda: float_tiff(6000, 6000), "ok", None),
    "gray16_6000x6000.png": (lambda: png_repeated_rows(6000, 6000, 16, 0,
                                                       np.arange(6000, dtype=">u2").tobytes()), "ok", None),
    "rgba_6000x6000.png": (lambda: png_repeated_rows(6000, 6000, 8, 6,
                                                     np.tile(np.arange(256, dtype=np.uint8), 94)[:24000].tobytes()),
                           "ok", None),
    "thin_4000x10.png": (lambda: encode(noise((4000, 10)), "PNG"), "either", None),
    "thin_10x4000.png": (lambda: encode(noise((10, 4000)), "PNG"), "either", None),
    "ztxt_bomb.png": (ztxt_bomb_png, "either", 5),
    "gif_2000_frames.gif": (many_frames_gif, "either", 5),
    "zero_bytes.png": (lambda: b"", "refused", None),
    "random_bytes.png": (lambda: np.random.default_rng(9).bytes(4096), "refused", None),
    "notes.txt": (lambda: b"hello, this is not an image\n" * 20, "refused", None),
    "drawing.svg": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32">'
                            b'<rect width="32" height="32" fill="red"/></svg>', "refused", None),
}

for _name, (_make, _alone, _secs) in HOSTILE_IMAGES.items():
    _slug = _name.replace(".", "_")
    if _alone != "ok":  # a large image that must load is tested beside two others only (it is slow)
        case(f"image_alone_{_slug}", "images", _good_alone(_name, _make), expect=_alone, max_seconds=_secs)
    case(f"image_mixed_{_slug}", "images",
         (lambda m, n: lambda folder: files_spec(folder, {"a.png": good_png(1), "b.png": good_png(2), n: m()}))(
             _make, _name),
         valid_items={"ok": 3, "refused": 2, "either": None}[_alone], expect="ok",
         skipped=(_name,) if _alone == "refused" else (), max_seconds=_secs)

case("image_upload_names_are_data", "images",
     lambda f: files_spec(f, {"../../etc/passwd.png": good_png(1), "![x](http://evil.example/t.png).png": good_png(2),
                              "<img src=x onerror=alert(1)>.png": good_png(3)}), valid_items=3)
_CSV3 = {"a.png": good_png(1), "b.png": good_png(2), "c.png": good_png(3)}
case("labels_csv_good", "images",
     lambda f: files_spec(f, _CSV3, b"image,label\na.png,cat\nb.png,dog\nc.png,cat\n",
                          expect_classes=["cat", "dog"]), valid_items=3)
case("labels_csv_lists_missing_file", "images",
     lambda f: files_spec(f, _CSV3, b"image,label\na.png,cat\nb.png,dog\nc.png,cat\nghost.png,dog\n"),
     valid_items=3, skipped=("ghost.png",))
case("labels_csv_utf16", "images",
     lambda f: files_spec(f, _CSV3, "image,label\na.png,cat\nb.png,dog\nc.png,cat\n".encode("utf-16")),
     valid_items=3, expect="either")
case("labels_csv_no_image_column", "images",
     lambda f: files_spec(f, _CSV3, b"file,label\na.png,cat\n"), expect="refused")
case("labels_csv_markdown_labels", "images",
     lambda f: files_spec(f, _CSV3, b"image,label\na.png,[re-login](http://evil.example)\n"
                                    b"b.png,![x](http://evil.example/t.png)\nc.png,**bold**\n",
                          expect_classes=["![x](http://evil.example/t.png)", "**bold**",
                                          "[re-login](http://evil.example)"]), valid_items=3)


# --- images: ZIP archives (from_zip) --------------------------------------------------------


def zip_spec(path: Path, **checks) -> dict:
    return {"call": "zip", "path": str(path), **checks}


def _zip_case(members: Callable[[], list[Member]]) -> Callable[[Path], dict]:
    return lambda folder: zip_spec(raw_zip(folder / "upload.zip", members()))


def _bad_crc_stored() -> Member:
    data = good_png(seed=40)
    member = stored("cat/bad_crc.png", data)
    member.payload = [data[:100] + bytes(b ^ 0xFF for b in data[100:110]) + data[110:]]
    return member


def _bad_deflate() -> Member:
    member = deflated("dog/bad_deflate.png", good_png(seed=41))
    member.payload = [b"\xff" + member.payload[0][1:]]  # block type 3: reserved, always an error
    return member


def _encrypted() -> Member:
    data = np.random.default_rng(4).bytes(12) + good_png(seed=42)  # 12-byte ZipCrypto header + "cipher"
    return Member("cat/secret.png", [data], zlib.crc32(good_png(seed=42)), len(data) - 12, flags=0x1)


def _with_five(*extra: Callable[[], Member]) -> Callable[[], list[Member]]:
    """The five good images plus members made (lazily, at build time) by ``extra``."""
    return lambda: [*(deflated(n, b) for n, b in five_good().items()), *(make() for make in extra)]


case("zip_good_all_formats", "archives",
     lambda f: zip_spec(make_zip(f / "u.zip", {f"{'a' if i % 2 else 'b'}/{n}": b
                                               for i, (n, b) in enumerate(good_images().items())})), valid_items=6)
case("zip_good_single_top_folder", "archives",
     lambda f: zip_spec(make_zip(f / "u.zip", {f"photos/{n}": b for n, b in five_good().items()}),
                        expect_classes=["cat", "dog"]), valid_items=5)
case("zip_good5_bad_crc_stored", "archives", lambda f: zip_spec(raw_zip(f / "u.zip", _with_five(_bad_crc_stored)())),
     valid_items=5, skipped=("cat/bad_crc.png",))
case("zip_good5_bad_deflate", "archives", lambda f: zip_spec(raw_zip(f / "u.zip", _with_five(_bad_deflate)())),
     valid_items=5, skipped=("dog/bad_deflate.png",))
case("zip_good5_encrypted", "archives", lambda f: zip_spec(raw_zip(f / "u.zip", _with_five(_encrypted)())),
     valid_items=5, skipped=("cat/secret.png",))
case("zip_good5_three_unreadable", "archives",
     lambda f: zip_spec(raw_zip(f / "u.zip", _with_five(_bad_crc_stored, _bad_deflate, _encrypted)())),
     valid_items=5, skipped=("cat/bad_crc.png", "dog/bad_deflate.png", "cat/secret.png"))
case("zip_good5_unknown_method", "archives",
     _zip_case(_with_five(lambda: Member("cat/aes.png", [b"\0" * 64], 0, 64, method=99))), valid_items=5,
     skipped=("cat/aes.png",))
for _label, _evil in {"dotdot": "../evil.png", "dotdot_inside": "cat/../../evil.png", "absolute": "/tmp/evil.png",
                      "backslash_dotdot": "..\\..\\evil.png", "drive_letter": "C:/evil.png"}.items():
    case(f"zip_path_{_label}", "archives", _zip_case(_with_five(lambda e=_evil: stored(e, good_png(seed=50)))),
         expect="refused")
case("zip_symlink_member", "archives",
     _zip_case(_with_five(lambda: stored("cat/link.png", b"../../../../etc/passwd", external_attr=0o120777 << 16))),
     expect="refused")
case("zip_nested_zip", "archives",
     lambda f: zip_spec(raw_zip(f / "u.zip", _with_five(
         lambda: stored("cat/inner.zip", make_zip(f / "inner.zip", {"cat/x.png": good_png(60)}).read_bytes()))())),
     valid_items=5, skipped=("cat/inner.zip",))
case("zip_bomb_honest_3_5gb", "archives", _zip_case(_with_five(lambda: zeros_member("cat/huge.png", 3584 * MB))),
     expect="refused", max_seconds=5)
case("zip_bomb_lying_size", "archives",
     _zip_case(_with_five(lambda: zeros_member("cat/liar.png", 3584 * MB, cd_file_size=1000))),
     valid_items=5, expect="either", max_seconds=10)
case("zip_member_1gb_over_file_limit", "archives",
     _zip_case(_with_five(lambda: zeros_member("cat/big.png", 1024 * MB))),
     valid_items=5, expect="ok", skipped=("cat/big.png",), max_seconds=10)
case("zip_22_members_of_60mb", "archives",
     _zip_case(_with_five(*(lambda i=i: zeros_member(f"cat/z{i:02d}.png", 60 * MB, block=4 * MB) for i in range(22)))),
     valid_items=5, expect="either", max_seconds=20)
case("zip_60000_members", "archives",
     _zip_case(lambda: [stored(f"c/{i}.png", b"x") for i in range(60_000)]), expect="refused", max_seconds=5)
case("zip_not_a_zip", "archives", lambda f: zip_spec(write(f, "u.zip", np.random.default_rng(1).bytes(5000))),
     expect="refused")
case("zip_zero_bytes", "archives", lambda f: zip_spec(write(f, "u.zip", b"")), expect="refused")
case("zip_empty_archive", "archives", lambda f: zip_spec(make_zip(f / "u.zip", {})), expect="refused")
case("zip_only_non_images", "archives",
     lambda f: zip_spec(make_zip(f / "u.zip", {"readme.txt": b"hi", "cat/data.csv": b"a,b\n1,2\n"})),
     expect="refused")
case("zip_duplicate_names", "archives",
     _zip_case(lambda: [deflated("cat/a.png", good_png(1)), deflated("cat/a.png", good_png(2)),
                        deflated("dog/b.png", good_png(3)), deflated("dog/c.png", good_png(4))]),
     valid_items=3, expect="either")
case("zip_truncated", "archives",
     lambda f: zip_spec(write(f, "u.zip", (b := make_zip(f / "full.zip", five_good()).read_bytes())[: len(b) // 2])),
     expect="refused")
case("zip_macos_junk", "archives",
     lambda f: zip_spec(make_zip(f / "u.zip", {**five_good(), "__MACOSX/cat/._ok_1.png": b"\0\5\26\7junk",
                                               "cat/.DS_Store": b"\0\0\0\1Bud1"})), valid_items=5)
case("zip_markdown_class_names", "archives",
     lambda f: zip_spec(make_zip(f / "u.zip", {
         "![x](http://evil.example/t.png)/a.png": good_png(1), "[re-login](http://evil.example)/b.png": good_png(2),
         "<img src=x onerror=alert(1)>/c.png": good_png(3), "**bold** _it_/d.png": good_png(4)})),
     valid_items=4, expect="ok")
case("zip_markdown_class_names_flat", "archives",
     lambda f: zip_spec(make_zip(f / "u.zip", {"![x](evil.png)/a.png": good_png(1), "[re-login](evil)/b.png":
                                               good_png(2), "cat\u202egnp.exe/c.png": good_png(3)}),
                        expect_classes=["![x](evil.png)", "[re-login](evil)", "cat\u202egnp.exe"]), valid_items=3)
case("zip_hostile_images_inside", "archives",
     lambda f: zip_spec(make_zip(f / "u.zip", {**five_good(), **{f"cat/{n}": m() for n, (m, e, _) in
                                                                 HOSTILE_IMAGES.items() if e == "refused"}})),
     valid_items=5, max_seconds=10,
     skipped=tuple(f"cat/{n}" for n, (_, e, _) in HOSTILE_IMAGES.items() if e == "refused"))


# --- images: local folders (from_folder) ----------------------------------------------------


def folder_spec(path: Path, **checks) -> dict:
    return {"call": "folder", "path": str(path), **checks}


def _folder_with(extra: Callable[[Path], None]) -> Callable[[Path], dict]:
    def build(folder: Path) -> dict:
        root = folder / "images"
        for name, blob in five_good().items():
            write(root, name, blob)
        extra(root)
        return folder_spec(root)
    return build


def _symlink(target: str, link: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / link)
    return make


def _sparse(names: Iterable[str], size: int) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        for name in names:
            with open(root / name, "wb") as fh:
                fh.truncate(size)
    return make


def _many_files(count: int) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        d = root / "cat"
        first = d / "f0.png"
        first.write_bytes(b"")
        for i in range(1, count):
            os.link(first, d / f"f{i}.png")
    return make


def _folder_good(folder: Path) -> dict:
    for i, (name, blob) in enumerate(good_images().items()):
        write(folder / "imgs", f"{'a' if i % 2 else 'b'}/{name}", blob)
    return folder_spec(folder / "imgs", expect_classes=["a", "b"])


def _folder_empty(folder: Path) -> dict:
    (folder / "empty").mkdir()
    return folder_spec(folder / "empty")


case("folder_good", "folders", _folder_good, valid_items=6)
case("folder_symlink_outside", "folders", _folder_with(_symlink("/etc/passwd", "cat/leak.png")), valid_items=5)
case("folder_symlink_loop", "folders", _folder_with(_symlink("..", "cat/loop")), valid_items=5, max_seconds=5)
case("folder_fifo_named_png", "folders", _folder_with(lambda r: os.mkfifo(r / "cat" / "pipe.png")), valid_items=5,
     max_seconds=5)
case("folder_sparse_10gb_file", "folders", _folder_with(_sparse(["cat/big.png"], 10 * GB)), valid_items=5,
     skipped=("cat/big.png",), max_seconds=5)
case("folder_40_sparse_60mb_files", "folders", _folder_with(_sparse([f"cat/s{i}.png" for i in range(40)], 60 * MB)),
     valid_items=5, expect="either", max_seconds=10)
case("folder_22_sparse_60mb_files", "folders", _folder_with(_sparse([f"cat/s{i}.png" for i in range(22)], 60 * MB)),
     valid_items=5, expect="either", max_seconds=20)
case("folder_50001_files", "folders", _folder_with(_many_files(50_001)), expect="refused", max_seconds=10)
case("folder_missing", "folders", lambda f: folder_spec(f / "no-such-folder"), expect="refused")
case("folder_is_a_file", "folders", lambda f: folder_spec(write(f, "file.png", good_png())), expect="refused")
case("folder_empty", "folders", _folder_empty, expect="refused")
case("folder_markdown_class_names", "folders",
     _folder_with(lambda r: [write(r, f"{c}/x.png", good_png(70 + i)) for i, c in
                             enumerate(["![x](evil.png)", "[re-login](javascript:alert(1))", "<b>bold</b>"])]),
     valid_items=8)
case("folder_hidden_junk", "folders",
     _folder_with(lambda r: [write(r, n, b"junk") for n in (".DS_Store", ".hidden/x.png", "cat/._ok_1.png")]),
     valid_items=5)
case("folder_hostile_images_inside", "folders",
     _folder_with(lambda r: [write(r, f"cat/{n}", m()) for n, (m, e, _) in HOSTILE_IMAGES.items() if e == "refused"]),
     valid_items=5, max_seconds=10,
     skipped=tuple(f"cat/{n}" for n, (_, e, _) in HOSTILE_IMAGES.items() if e == "refused"))


# --- predictions files ----------------------------------------------------------------------

IDS = ["img0", "img1", "img2", "img3"]
CLASSES = ["cat", "dog", "bird"]
P_GOOD = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])


def pred_spec(folder: Path, filename: str, data: bytes, ids: list[str] = IDS, classes: list[str] = CLASSES,
              **kwargs) -> dict:
    checks = {k: kwargs.pop(k) for k in ("expect_classes", "require_note") if k in kwargs}
    return {"call": "predictions", "path": str(write(folder, filename, data)), "filename": filename,
            "ids": list(ids), "classes": list(classes), "kwargs": kwargs, **checks}


def table_csv(values, ids=IDS, columns=CLASSES, sep: str = ",", id_col: str = "id") -> bytes:
    lines = [sep.join([id_col, *columns])]
    lines += [sep.join([i, *(repr(float(v)) if isinstance(v, (float, np.floating)) else str(v) for v in row)])
              for i, row in zip(ids, values)]
    return ("\n".join(lines) + "\n").encode()


def _pred(name: str, filename: str, make: Callable[[Path], bytes], expect: str = "ok", valid: int | None = None,
          max_seconds: float | None = None, **kwargs) -> None:
    if valid is None and expect != "refused":
        valid = len(kwargs.get("ids", IDS))
    case(name, "predictions", lambda f: pred_spec(f, filename, make(f), **kwargs), valid_items=valid,
         expect=expect, max_seconds=max_seconds)


def _parquet(frame_columns: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(frame_columns), buf)
    return buf.getvalue()


def _parquet_good() -> bytes:
    return _parquet({"id": IDS, **{c: P_GOOD[:, j] for j, c in enumerate(CLASSES)}})


def _parquet_50m_rows(folder: Path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 5_000_000  # one small table written ten times; dictionary ids and one float: RLE runs
    chunk = pa.table({"id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array(["img0"])),
                      "cat": pa.array(np.full(n, 0.5, np.float32))})
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, chunk.schema, compression="none", write_statistics=False) as writer:
        for _ in range(10):
            writer.write_table(chunk, row_group_size=n)
    return buf.getvalue()


def _parquet_many_columns(n: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arr = pa.array(np.full(len(IDS), 0.1))
    table = pa.Table.from_arrays([pa.array(IDS), *([arr] * n)], names=["id", *(f"c{i}" for i in range(n))])
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none")
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=arr.dtype.hasobject)
    return buf.getvalue()


def _npy_header_only(shape: tuple, dtype: str = "<f8", total: int = 200) -> bytes:
    """An NPY file of ``total`` bytes whose header claims ``shape``."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    prefix = np.lib.format.magic(1, 0) + struct.pack("<H", len(header)) + header
    return prefix + bytes(max(0, total - len(prefix)))


def _npy_object(folder: Path) -> bytes:
    arr = np.empty((4, 3), dtype=object)
    arr[:] = 0.25
    arr[0, 0] = _Canary(canary_dir(folder) / "npy-object")
    return _npy(arr)


def _million_columns() -> bytes:
    names = ",".join(f"class_{i:07d}_xxxxxxxxxxx" for i in range(1_000_000))
    return f"id,{names}\nimg0,{'0,' * 999_999}1\n".encode()


_good_csv = table_csv(P_GOOD)
_pred("pred_csv_good", "p.csv", lambda f: _good_csv)
_pred("pred_csv_logits", "p.csv", lambda f: table_csv(np.log(P_GOOD) * 3), require_note=True)
_pred("pred_csv_bom", "p.csv", lambda f: b"\xef\xbb\xbf" + _good_csv)
_pred("pred_csv_semicolon", "p.csv", lambda f: table_csv(P_GOOD, sep=";"))
_pred("pred_csv_tab", "p.tsv.csv", lambda f: table_csv(P_GOOD, sep="\t"))
_pred("pred_csv_utf16", "p.csv", lambda f: _good_csv.decode().encode("utf-16"))
_pred("pred_csv_image_column", "p.csv", lambda f: table_csv(P_GOOD, id_col="image"))
_pred("pred_parquet_good", "p.parquet", lambda f: _parquet_good())
_pred("pred_npy_good", "p.npy", lambda f: _npy(P_GOOD))
_pred("pred_npy_float16", "p.npy", lambda f: _npy(P_GOOD.astype(np.float16)))
_pred("pred_npy_bigendian_fortran", "p.npy", lambda f: _npy(np.asfortranarray(P_GOOD.astype(">f8"))))
_pred("pred_csv_markdown_classes", "p.csv",
      lambda f: table_csv(P_GOOD[:3], ids=IDS[:3], columns=["![x](http://evil.example/t.png)",
                                                           "[re-login](http://evil.example)", "<b>x</b>"]),
      ids=IDS[:3], classes=["![x](http://evil.example/t.png)", "[re-login](http://evil.example)", "<b>x</b>"],
      expect_classes=["![x](http://evil.example/t.png)", "[re-login](http://evil.example)", "<b>x</b>"])
_nan = P_GOOD.copy()
_nan[1, 1] = np.nan
_inf = P_GOOD.copy()
_inf[2, 0] = np.inf
_pred("pred_csv_nan", "p.csv", lambda f: table_csv(_nan), "refused")
_pred("pred_csv_inf", "p.csv", lambda f: table_csv(_inf), "refused")
_pred("pred_csv_wrong_columns", "p.csv", lambda f: table_csv(P_GOOD[:, :2], columns=["cat", "dog"]), "refused",
      expected_classes=3)
_pred("pred_csv_missing_id_column", "p.csv", lambda f: table_csv(P_GOOD, id_col="name"), "refused")
_pred("pred_csv_duplicate_ids", "p.csv", lambda f: table_csv(P_GOOD, ids=["img0", "img1", "img1", "img3"]), "refused")
_pred("pred_csv_ids_not_in_dataset", "p.csv", lambda f: table_csv(P_GOOD, ids=["img0", "img1", "img2", "zzz"]),
      "refused")
_pred("pred_csv_non_numeric", "p.csv", lambda f: table_csv([[0.5, "high", 0.5]] + P_GOOD[1:].tolist()), "refused")
_pred("pred_csv_only_id_column", "p.csv", lambda f: ("id\n" + "\n".join(IDS) + "\n").encode(), "refused")
_pred("pred_csv_negative_values", "p.csv", lambda f: table_csv(P_GOOD - 0.5), "either", require_note=True)
_pred("pred_csv_all_zero_rows", "p.csv", lambda f: table_csv(np.zeros((4, 3))), "refused")
_pred("pred_csv_rows_sum_to_2", "p.csv", lambda f: table_csv(np.array([[1.0, 1.0, 0.0]] * 4)), "refused")
_pred("pred_csv_empty_file", "p.csv", lambda f: b"", "refused")
_pred("pred_csv_million_columns", "p.csv", lambda f: _million_columns(), "refused", max_seconds=5)
_pred("pred_csv_header_50mb_one_line", "p.csv",
      lambda f: b"id," + b"x" * (50 * MB) + b"\n" + b"".join(f"{i},1.0\n".encode() for i in IDS), "either",
      max_seconds=10)
_pred("pred_csv_2m_rows", "p.csv", lambda f: b"id,cat\n" + b"i,0.5\n" * 2_000_001, "refused", max_seconds=5)
_pred("pred_parquet_50m_rows", "p.parquet", _parquet_50m_rows, "refused", max_seconds=5)
_pred("pred_parquet_20000_columns", "p.parquet", lambda f: _parquet_many_columns(20_000), "refused", max_seconds=5)
_pred("pred_parquet_garbage", "p.parquet", lambda f: b"PAR1" + np.random.default_rng(3).bytes(3000) + b"PAR1",
      "refused")
_pred("pred_parquet_string_column", "p.parquet",
      lambda f: _parquet({"id": IDS, "cat": ["a", "b", "c", "d"], "dog": [0.5] * 4}), "refused")
_pred("pred_npy_header_claims_1e12", "p.npy", lambda f: _npy_header_only((10**9, 10**3)), "refused", max_seconds=5)
_pred("pred_npy_header_claims_10m_columns", "p.npy", lambda f: _npy_header_only((4, 10**7)), "refused", max_seconds=5)
_pred("pred_npy_object_pickle", "p.npy", _npy_object, "refused")
_pred("pred_pickle_named_npy", "p.npy", lambda f: evil_pickle(f, "pickle-npy"), "refused")
_pred("pred_npy_3d", "p.npy", lambda f: _npy(np.full((4, 3, 2), 0.5)), "refused")
_pred("pred_npy_complex", "p.npy", lambda f: _npy(P_GOOD.astype(np.complex64)), "refused")
_pred("pred_npy_nan", "p.npy", lambda f: _npy(_nan), "refused")
_pred("pred_npy_wrong_rows", "p.npy", lambda f: _npy(np.vstack([P_GOOD, P_GOOD[:1]])), "refused")
_pred("pred_unknown_extension", "p.xlsx", lambda f: _good_csv, "refused")


# --- session bundles ------------------------------------------------------------------------


def _make_good_bundle(path: Path) -> None:
    from infi.bundle import save_session
    from tests.helpers import demo_session

    path.write_bytes(save_session(demo_session(n=60, members=2)))


def good_bundle() -> bytes:
    return fixture("good.infi", _make_good_bundle).read_bytes()


def bundle_parts() -> tuple[dict, dict[str, np.ndarray], str]:
    from safetensors.numpy import load

    with zipfile.ZipFile(io.BytesIO(good_bundle())) as zf:
        return (json.loads(zf.read("manifest.json")),
                {k: np.array(v) for k, v in load(zf.read("arrays.safetensors")).items()},
                zf.read("provenance.json").decode())


def _bundle_members(manifest: dict, arrays: dict, provenance: str) -> dict[str, bytes]:
    from safetensors.numpy import save

    return {"manifest.json": json.dumps(manifest).encode(),
            "arrays.safetensors": save({k: np.ascontiguousarray(v) for k, v in arrays.items()}),
            "provenance.json": provenance.encode()}


def _tamper(edit: Callable[[dict, dict, dict], None]) -> Callable[[Path], dict]:
    """A bundle whose manifest, arrays and provenance (as a dict) ``edit`` changes in place."""
    def build(folder: Path) -> dict:
        manifest, arrays, provenance = bundle_parts()
        prov = json.loads(provenance)
        edit(manifest, arrays, prov)
        return {"call": "bundle", "path": str(make_zip(folder / "s.infi",
                                                         _bundle_members(manifest, arrays, json.dumps(prov))))}
    return build


def _raw_bundle(edit: Callable[[Path, dict[str, bytes]], dict[str, bytes] | list[Member] | bytes]):
    """A bundle from the good one's member bytes: ``edit`` returns new members, raw Members or bytes."""
    def build(folder: Path) -> dict:
        with zipfile.ZipFile(io.BytesIO(good_bundle())) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        out = edit(folder, members)
        path = folder / "s.infi"
        if isinstance(out, bytes):
            path.write_bytes(out)
        elif isinstance(out, list):
            raw_zip(path, out)
        else:
            make_zip(path, out)
        return {"call": "bundle", "path": str(path)}
    return build


def _bundle(name: str, build, expect: str = "refused", max_seconds: float | None = None) -> None:
    case(name, "bundles", build, expect=expect, max_seconds=max_seconds)


def _set_world_n(value) -> Callable[[dict, dict, dict], None]:
    def edit(m, a, p):
        m["dataset"]["source"]["n"] = value
    return edit


def _set(path: tuple, value) -> Callable[[dict, dict, dict], None]:
    def edit(m, a, p):
        target = m
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _arrays(fn: Callable[[dict], None]) -> Callable[[dict, dict, dict], None]:
    return lambda m, a, p: fn(a)


def _step_coef(shape: list[int], raw: bytes | None = None) -> Callable[[dict, dict, dict], None]:
    import base64

    def edit(m, a, p):
        data = raw if raw is not None else bytes(4 * int(np.prod(shape, dtype=np.int64)))
        p["steps"][0]["coef"] = {"shape": shape, "float32_base64": base64.b64encode(data).decode()}
    return edit


def _huge_manifest(folder: Path, members: dict[str, bytes]) -> list[Member]:
    block = b" " * (16 * MB)
    tail = members["manifest.json"]
    manifest = Member("manifest.json", deflate_repeat(block, 13, tail), crc32_repeat(block, 13, tail),
                      13 * len(block) + len(tail), method=8)
    return [manifest, deflated("arrays.safetensors", members["arrays.safetensors"]),
            deflated("provenance.json", members["provenance.json"])]


def _bomb_member(lie: bool) -> Callable[[Path, dict[str, bytes]], list[Member]]:
    def edit(folder: Path, members: dict[str, bytes]) -> list[Member]:
        bomb = zeros_member("arrays.safetensors", 3584 * MB, cd_file_size=len(members["arrays.safetensors"])
                            if lie else None)
        return [deflated("manifest.json", members["manifest.json"]), bomb,
                deflated("provenance.json", members["provenance.json"])]
    return edit


_bundle("bundle_good", lambda f: {"call": "bundle", "path": str(write(f, "s.infi", good_bundle()))}, expect="ok")
_bundle("bundle_world_n_150000", _tamper(_set_world_n(150_000)), max_seconds=5)
_bundle("bundle_world_n_5e7", _tamper(_set_world_n(5e7)), max_seconds=5)
_bundle("bundle_world_n_infinity", _tamper(_set_world_n(float("inf"))), max_seconds=5)
_bundle("bundle_world_n_negative", _tamper(_set_world_n(-5)), max_seconds=5)
_bundle("bundle_world_n_text", _tamper(_set_world_n("many")), max_seconds=5)
# within the budget, but the bundle's 60 rows of scores cannot be 2,000 images: regenerating them
# first costs ~1 ms an image (~50 s at the 50,000 limit) before the hash check refuses
_bundle("bundle_world_n_2000_wrong_hash", _tamper(_set_world_n(2_000)), max_seconds=1)
_bundle("bundle_world_split_path", _tamper(_set(("dataset", "source", "split"), "../../etc/passwd")), max_seconds=5)
_bundle("bundle_eval_world_n_150000", _tamper(_set(("eval_sets", "shifted", "source", "n"), 150_000)), max_seconds=5)
_bundle("bundle_member_inflates_3_5gb", _raw_bundle(_bomb_member(lie=False)), max_seconds=5)
_bundle("bundle_member_inflates_3_5gb_lying", _raw_bundle(_bomb_member(lie=True)), max_seconds=10)
_bundle("bundle_huge_manifest_whitespace", _raw_bundle(_huge_manifest), max_seconds=10)
_bundle("bundle_student_wrong_width", _tamper(_arrays(lambda a: a.update(
    {"student/coef": a["student/coef"][:, :-1], "student/mean": a["student/mean"][:-1],
     "student/scale": a["student/scale"][:-1]}))))
_bundle("bundle_val_idx_out_of_range", _tamper(_arrays(lambda a: a["val_idx"].__setitem__(0, 10**6))))
_bundle("bundle_val_idx_negative", _tamper(_arrays(lambda a: a["val_idx"].__setitem__(0, -3))))
_bundle("bundle_train_idx_float",
        _tamper(_arrays(lambda a: a.update({"train_idx": a["train_idx"].astype(np.float32)}))))
_bundle("bundle_teacher_all_nan", _tamper(_arrays(lambda a: a["P"].__setitem__(slice(None), np.nan))))
_bundle("bundle_teacher_wrong_shape", _tamper(_arrays(lambda a: a.update({"P": a["P"][:, :-1]}))))
_bundle("bundle_concepts_inf", _tamper(_arrays(lambda a: a["X"].__setitem__((0, 0), np.inf))))
_bundle("bundle_labels_out_of_range", _tamper(_arrays(lambda a: a["labels"].__setitem__(0, 99))))
_bundle("bundle_provenance_wrong_shape", _tamper(_step_coef([2, 22, 6])))
_bundle("bundle_provenance_shape_overflow", _tamper(_step_coef([2**32, 2**32], raw=b"")))
_bundle("bundle_provenance_not_a_list", _tamper(lambda m, a, p: p.__setitem__("steps", {"0": 1})))
_bundle("bundle_version_2", _tamper(_set(("version",), 2)))
_bundle("bundle_student_meta_text", _tamper(_set(("student", "n_iter"), "many")))
_bundle("bundle_truncated", _raw_bundle(lambda f, m: (b := good_bundle())[: len(b) // 2]))
_bundle("bundle_manifest_not_json", _raw_bundle(lambda f, m: {**m, "manifest.json": b"{not json"}))
_bundle("bundle_manifest_is_list", _raw_bundle(lambda f, m: {**m, "manifest.json": b"[1, 2, 3]"}))
_bundle("bundle_manifest_deep_nesting", _raw_bundle(lambda f, m: {**m, "manifest.json": b"[" * 200_000}))
_bundle("bundle_missing_member", _raw_bundle(lambda f, m: {k: v for k, v in m.items() if k != "provenance.json"}))
_bundle("bundle_extra_member", _raw_bundle(lambda f, m: {**m, "notes.txt": b"hello"}))
_bundle("bundle_arrays_member_is_pickle", _raw_bundle(lambda f, m: {**m, "arrays.safetensors":
                                                                     evil_pickle(f, "bundle-arrays")}))
_bundle("bundle_extra_pickle_member", _raw_bundle(lambda f, m: {**m, "student.pkl": evil_pickle(f, "bundle-extra")}))
_bundle("bundle_safetensors_header_claims_huge", _raw_bundle(lambda f, m: {
    **m, "arrays.safetensors": struct.pack("<Q", 2**62) + b'{"X":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'}))
_bundle("bundle_not_a_zip", lambda f: {"call": "bundle", "path": str(write(f, "s.infi", b"PK\3\4" + bytes(100)))})


# --- concept lists --------------------------------------------------------------------------


def _concepts(name: str, filename: str, make: Callable[[], bytes], expect: str = "ok", valid: int | None = None,
              max_seconds: float | None = None, **checks) -> None:
    case(name, "concepts", lambda f: {"call": "concepts", "path": str(write(f, filename, make())),
                                      "filename": filename, **checks},
         valid_items=valid, expect=expect, max_seconds=max_seconds)


_MD_LINES = ["![x](http://evil.example/t.png)", "[re-login](http://evil.example)", "<script>alert(1)</script>",
             "<img src=x onerror=alert(1)>", "**bold** and _it_", "`code`", "# heading", "| a | b |"]
_concepts("concepts_plain", "c.txt", lambda: b"red\ngreen\nstriped\n", valid=3)
_concepts("concepts_csv_good", "c.csv", lambda: b"concept,category\nred,colour\nstriped,pattern\n", valid=2)
_concepts("concepts_utf16", "c.txt", lambda: "red\ngreen\nstriped\n".encode("utf-16"), valid=3)
_concepts("concepts_markdown_html", "c.txt", lambda: "\n".join(_MD_LINES).encode(), valid=len(_MD_LINES),
          expect_names=[s.lower() for s in _MD_LINES])
_concepts("concepts_csv_markdown_categories", "c.csv",
          lambda: b"concept,category\nred,[re-login](http://evil.example)\nblue,<b>x</b>\n", valid=2)
_concepts("concepts_duplicates", "c.txt", lambda: b"red\nRed\n  red  \ngreen\nred\n", valid=2)
_concepts("concepts_5000", "c.txt", lambda: "\n".join(f"concept {i}" for i in range(5000)).encode(), valid=5000)
_concepts("concepts_6000", "c.txt", lambda: "\n".join(f"concept {i}" for i in range(6000)).encode(), "refused")
_concepts("concepts_empty", "c.txt", lambda: b"", "refused")
_concepts("concepts_blank_lines", "c.txt", lambda: b"\n \n\t\n" * 100, "refused")
_concepts("concepts_1m_short_lines", "c.txt", lambda: "\n".join(f"c{i}" for i in range(1_000_000)).encode(),
          "refused", max_seconds=10)
_concepts("concepts_1m_lines_14mb", "c.txt", lambda: b"".join(b"concept %07d\n" % i for i in range(1_000_000)),
          "refused", max_seconds=5)
_concepts("concepts_10mb_single_line", "c.txt", lambda: b"a" * (10 * MB), "refused", max_seconds=5)
_concepts("concepts_7mb_single_line", "c.txt", lambda: b"a" * (7 * MB), "refused", max_seconds=5)
_concepts("concepts_binary_junk", "c.txt", lambda: np.random.default_rng(8).bytes(50_000), "refused")
_concepts("concepts_csv_no_concept_column", "c.csv", lambda: b"name,category\nred,colour\n", "refused")
_concepts("concepts_control_characters", "c.txt", lambda: b"red\x1b[31m\ngreen\n", "either")
_concepts("concepts_nul_bytes", "c.txt", lambda: b"red\x00\ngreen\n", "either")
_concepts("concepts_81_chars", "c.txt", lambda: b"a" * 81 + b"\ngreen\n", "either")


# --- model folders --------------------------------------------------------------------------


def _make_tiny_clip(path: Path) -> None:
    from transformers import CLIPConfig, CLIPModel

    from infi.demo.encoder import DEMO_ENCODER_DIR

    config = CLIPConfig(
        text_config={"vocab_size": 646, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 32, "bos_token_id": 644,
                     "eos_token_id": 645, "pad_token_id": 645},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16)
    CLIPModel(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(DEMO_ENCODER_DIR / name, path / name)
    processor = json.loads((DEMO_ENCODER_DIR / "processor_config.json").read_text())
    processor["image_processor"]["crop_size"] = {"height": 32, "width": 32}
    processor["image_processor"]["size"] = {"shortest_edge": 32}
    (path / "processor_config.json").write_text(json.dumps(processor))


def _make_tiny_vit(path: Path, labels: list[str] = CLASSES) -> None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8, num_labels=len(labels),
                       id2label=dict(enumerate(labels)), label2id={c: i for i, c in enumerate(labels)})
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)


def _model(kind: str, base: str, edit: Callable[[Path], None] | None = None) -> Callable[[Path], dict]:
    """A copy of a tiny model folder (``clip`` or ``vit``), changed by ``edit``, loaded as ``kind``."""
    def build(folder: Path) -> dict:
        source = fixture(f"tiny-{base}", _make_tiny_clip if base == "clip" else _make_tiny_vit)
        target = folder / "model"
        shutil.copytree(source, target)
        if edit is not None:
            edit(target)
        return {"call": kind, "path": str(target)}
    return build


def _pickle_weights(model: Path) -> None:
    (model / "model.safetensors").unlink()
    (model / "pytorch_model.bin").write_bytes(evil_pickle(model.parent, "pytorch_model.bin"))


def _truncate_weights(model: Path) -> None:
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])


def _junk_weights(model: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"junk": np.zeros(4, np.float32)}, str(model / "model.safetensors"))


def _huge_header(model: Path) -> None:
    (model / "model.safetensors").write_bytes(struct.pack("<Q", 2**62) + b"{}" + bytes(64))


def _edit_config(change: dict) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        config = json.loads((model / "config.json").read_text())
        config.update(change)
        (model / "config.json").write_text(json.dumps(config))
    return edit


def _remote_code(model: Path) -> None:
    _edit_config({"auto_map": {"AutoConfig": "evil.EvilConfig",
                               "AutoModelForImageClassification": "evil.EvilModel"}})(model)
    canary = canary_dir(model.parent) / "remote-code"
    (model / "evil.py").write_text(f"open({str(canary)!r}, 'w').close()\n"
                                   "from transformers import ViTConfig as EvilConfig\n"
                                   "from transformers import ViTForImageClassification as EvilModel\n")


def _unlink(name: str) -> Callable[[Path], None]:
    return lambda model: (model / name).unlink()


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda model: (model / name).write_bytes(data)


def _models(name: str, kind: str, base: str, edit=None, expect: str = "refused", **checks) -> None:
    def build(folder: Path, b=_model(kind, base, edit)) -> dict:
        return {**b(folder), **checks}
    case(name, "models", build, expect=expect, max_seconds=20)


_models("model_clip_good", "clip", "clip", expect="ok")
_models("model_vit_good", "hf", "vit", expect="ok", expect_classes=CLASSES)
_models("model_vit_markdown_labels", "hf", "vit",
        lambda m: _make_tiny_vit(m, ["![x](http://evil.example/t.png)", "[re-login](http://evil.example)", "ok"]),
        expect="ok", expect_classes=["![x](http://evil.example/t.png)", "[re-login](http://evil.example)", "ok"])
_models("model_clip_as_classifier", "hf", "clip")
_models("model_vit_as_clip", "clip", "vit")
_models("model_clip_pickle_weights_only", "clip", "clip", _pickle_weights)
_models("model_vit_pickle_weights_only", "hf", "vit", _pickle_weights)
_models("model_vit_safetensors_beside_evil_pickle", "hf", "vit",
        lambda m: (m / "pytorch_model.bin").write_bytes(evil_pickle(m.parent, "beside.bin")), expect="ok")
_models("model_clip_truncated_safetensors", "clip", "clip", _truncate_weights)
_models("model_vit_truncated_safetensors", "hf", "vit", _truncate_weights)
_models("model_clip_junk_keys", "clip", "clip", _junk_weights)
_models("model_vit_junk_keys", "hf", "vit", _junk_weights)
_models("model_clip_header_claims_huge", "clip", "clip", _huge_header)
_models("model_clip_missing_config", "clip", "clip", _unlink("config.json"))
_models("model_vit_missing_config", "hf", "vit", _unlink("config.json"))
_models("model_vit_config_not_json", "hf", "vit", _write("config.json", b"{oops"))
_models("model_clip_missing_tokenizer", "clip", "clip", _unlink("tokenizer.json"))
_models("model_vit_remote_code", "hf", "vit", _remote_code, expect="either")
_models("model_vit_config_huge_dims", "hf", "vit",
        _edit_config({"hidden_size": 65536, "intermediate_size": 262144, "num_hidden_layers": 64}))
case("model_hf_missing_folder", "models", lambda f: {"call": "hf", "path": str(f / "no-such-model")},
     expect="refused")

CASES_BY_NAME: dict[str, Case] = {c.name: c for c in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"
