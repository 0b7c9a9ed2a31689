"""ImageSet: an ordered, validated collection of images with optional labels.

Sources: the Shapes World demo, a ZIP in ImageFolder layout (``class/xxx.png``), images plus a CSV
(``image,label``; label optional), a local folder, and a Hugging Face ``datasets`` id when that
package is installed. Bad input never takes valid input down with it: a corrupt or non-image file
is skipped and listed in ``skipped``; only an empty result, duplicate ids or labels outside the
class list are errors. Archives are read with path checks and size caps, and Pillow's
decompression-bomb warning is an error.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import re
import stat
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from infi.errors import DataError, InfiError, InputError, LimitError
from infi.limits import MB, Budget, hint

Progress = Callable[[int, int], None]
DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows drive in an archive member's path: refused
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@contextlib.contextmanager
def _image_errors(name: str):
    """Pillow's failures as one ``DataError`` naming the file; its bomb warning is an error.
    Pillow's format plugins raise many types on malformed files (OSError, SyntaxError, but also
    struct, zlib, index and type errors), so any of them is a corrupt file; a budget refusal
    passes through as it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except InfiError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
            raise DataError(f"{name}: refused as a decompression bomb ({err})") from err
        except UnidentifiedImageError:
            raise DataError(f"{name}: not an image Pillow can read") from None
        except MemoryError:
            raise LimitError(f"{name}: ran out of memory while decoding; the image is too large") from None
        except Exception as err:  # noqa: BLE001 - see the docstring
            raise DataError(f"{name}: corrupt or truncated image ({type(err).__name__}: {err})") from err


def decode_image(data: bytes, name: str = "image", budget: Budget | None = None) -> Image.Image:
    """Decode bytes to an upright RGB image (EXIF orientation applied) within the budget; bombs,
    truncation, unknown formats and images over the budget raise DataError or LimitError."""
    with _image_errors(name):
        img = Image.open(io.BytesIO(data))
        check_size(img, name, budget or Budget.current())
        img.load()
        img = ImageOps.exif_transpose(img)
    return to_rgb(img)


def check_image(data: bytes, name: str = "image", budget: Budget | None = None) -> None:
    """Validate bytes as an image by a real decode, bounded by the budget: the header's size and
    bit depth are checked before any pixel is allocated, then every pixel is decoded once (JPEG at
    reduced scale, which still reads every coded block), so a corrupt file is found while loading,
    never later on a page."""
    budget = budget or Budget.current()
    with _image_errors(name):
        img = Image.open(io.BytesIO(data))
        check_size(img, name, budget)
        if img.format == "JPEG":
            if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
                raise OSError("image file is truncated (no end-of-image marker)")
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
        img.load()
        for frame in range(1, min(getattr(img, "n_frames", 1), 2)):
            img.seek(frame)  # a second frame that does not decode is found now, too
            img.load()


BITS_PER_BAND = {"1": 1, "I": 32, "F": 32, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}


def check_size(img: Image.Image, name: str, budget: Budget) -> None:
    """The header's size against the budget, before any pixel is decoded."""
    w, h = img.size
    if w < 1 or h < 1:
        raise DataError(f"{name}: the image has no pixels ({w}×{h})")
    budget.check("max_pixels", w * h, f"{name}: {w}×{h} pixels")
    budget.check("max_image_side_ratio", max(w, h) / min(w, h), f"{name}: side ratio of {w}×{h} (too thin to "
                 "show or embed)")
    decoded = w * h * len(img.getbands()) * BITS_PER_BAND.get(img.mode, 8) // 8
    budget.check("max_decoded_bytes", decoded, f"{name}: decoded size ({img.mode}, {w}×{h})")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: transparency onto white, high bit depths rescaled to 8 bits (in
    float32 row blocks: float64 over a 16-bit photo once took 1.7 GB)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        finite = np.isfinite(arr) if arr.dtype.kind == "f" else None
        lo = float(arr[finite].min()) if finite is not None and finite.any() else float(arr.min())
        hi = float(arr[finite].max()) if finite is not None and finite.any() else float(arr.max())
        out = np.zeros(arr.shape, np.uint8)
        if hi > lo:
            step = max(1, (1 << 22) // max(arr.shape[1], 1))  # ~16 MB of float32 per block
            for r in range(0, arr.shape[0], step):
                block = (arr[r:r + step].astype(np.float32) - np.float32(lo)) * np.float32(255 / (hi - lo))
                out[r:r + step] = np.nan_to_num(np.clip(block, 0, 255)).astype(np.uint8)
        return Image.fromarray(out, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


@dataclass
class ImageSet:
    """Ordered ids with lazy image access, optional labels (-1 = unknown) and class names."""

    ids: list[str]
    loader: Callable[[int], Image.Image]
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    source: dict = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    content_hash: str = ""
    arrays: np.ndarray | None = None  # set when the images already exist as uint8 arrays

    def __post_init__(self) -> None:
        if not self.ids:
            raise DataError("The dataset is empty: no readable image was found"
                            + (f" ({len(self.skipped)} file(s) skipped)" if self.skipped else ""))
        dupes = sorted(k for k, v in Counter(self.ids).items() if v > 1)
        if dupes:
            raise DataError(f"Duplicate image ids: {dupes[:5]}{' …' if len(dupes) > 5 else ''}")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            n_classes = len(self.class_names or ())
            bad = (self.labels < -1) | (self.labels >= n_classes)
            if bad.any():
                raise DataError(f"Labels outside the class list {list(self.class_names or ())} "
                                f"for images {[self.ids[i] for i in np.flatnonzero(bad)[:5]]}")

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, i: int) -> Image.Image:
        if self.arrays is not None:
            return Image.fromarray(self.arrays[i])
        return self.loader(i)

    def images(self, indices: Iterable[int] | None = None) -> list[Image.Image]:
        return [self.image(i) for i in (range(len(self)) if indices is None else indices)]

    def lazy(self) -> LazyImages:
        """The images as a sequence decoded slice by slice: an encoder walking it in batches
        holds one batch of pixels, not the whole set (10,000 decoded photos are ~5 GB)."""
        return LazyImages(self)

    def as_arrays(self, size: int) -> np.ndarray:
        """All images resized to ``size``×``size`` as uint8 [N, size, size, 3]."""
        if self.arrays is not None and self.arrays.shape[1:3] == (size, size):
            return self.arrays
        out = np.empty((len(self), size, size, 3), np.uint8)
        for i in range(len(self)):
            img = self.image(i)
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            out[i] = np.asarray(img)
        return out

    def describe(self) -> dict:
        return {"n": len(self), "classes": list(self.class_names or ()), "source": self.source,
                "content_hash": self.content_hash, "skipped": len(self.skipped)}


@dataclass
class LazyImages:
    """``ImageSet.lazy()``: ``len`` and slices (decoded on access), as ``embed_images`` uses them."""

    images: ImageSet

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows: slice) -> list[Image.Image]:
        return self.images.images(range(*rows.indices(len(self.images))))


def _hash(ids: Sequence[str], blobs: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for i, blob in zip(ids, blobs):
        h.update(i.encode())
        h.update(hashlib.sha256(blob).digest())
    return h.hexdigest()


# --- sources ------------------------------------------------------------------------------------


def from_arrays(ids: Sequence[str], arrays: np.ndarray, labels: np.ndarray | None,
                class_names: Sequence[str] | None, source: dict) -> ImageSet:
    """Images that already exist as uint8 arrays [N, H, W, 3] (a generated world, say); the
    content hash covers the ids and the pixels, so a regenerated set can be checked."""
    ids = list(ids)
    digest = _hash(ids, (a.tobytes() for a in arrays))
    return ImageSet(ids, lambda i: Image.fromarray(arrays[i]), labels,
                    tuple(class_names) if class_names is not None else None, dict(source), [],
                    digest, arrays)


def _from_blobs(named: list[tuple[str, bytes]], labels: list[int] | None,
                class_names: tuple[str, ...] | None, source: dict,
                skipped: list[Skipped], progress: Progress | None = None, checked: bool = False) -> ImageSet:
    """Validate every blob (``check_image``: a real decode within the budget) unless the caller
    already did (``checked``); keep the bytes and decode each one again when it is used. A bad
    image is skipped and named."""
    budget = Budget.current()
    budget.check("max_images", len(named), "the dataset's image count")
    ids, blobs, keep_labels = [], [], []
    for k, (name, blob) in enumerate(named):
        if progress is not None and k % 50 == 0:
            progress(k, len(named))
        try:
            if not checked:
                check_image(blob, name, budget)
        except InputError as err:
            skipped.append(Skipped(name, str(err).removeprefix(f"{name}: ")))
            continue
        ids.append(name)
        blobs.append(blob)
        if labels is not None:
            keep_labels.append(labels[k])
    if progress is not None:
        progress(len(named), len(named))
    return ImageSet(ids, lambda i: decode_image(blobs[i], ids[i]),
                    np.asarray(keep_labels) if labels is not None else None, class_names, source,
                    skipped, _hash(ids, blobs))


def safe_zip_members(data: bytes | Path, max_members: int | None = None, max_total_bytes: int | None = None,
                     budget: Budget | None = None, check: Callable[[bytes, str], None] | None = None,
                     progress: Progress | None = None) -> tuple[list[tuple[str, bytes | None]], list[Skipped]]:
    """Read the regular files of a ZIP with path checks, streamed within the budget.

    Absolute paths, ``..`` components and links are refused (the whole archive: it is hostile).
    Nested archives, hidden or macOS metadata files, members over the per-file limit and members
    that cannot be read (bad CRC, bad compressed data, encryption, unknown compression) are
    skipped and named. Each member is read in blocks with a running byte count, so a member that
    lies about its size stops at the limit instead of filling memory. With ``check`` (e.g.
    ``check_image``), only image files are read, each is checked as soon as it is read and a
    failing one is skipped, named and kept as ``(name, None)``: its bytes are not held.
    """
    budget = budget or Budget.current()
    max_members = max_members or budget.max_images
    max_total_bytes = max_total_bytes or budget.max_total_bytes
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        raise DataError(f"Not a readable ZIP archive ({err})") from err
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > max_members:
            raise LimitError(f"The archive holds {len(infos):,} files; at most {max_members:,} are allowed "
                             f"({hint('max_images')})")
        declared = sum(i.file_size for i in infos)
        if declared > max_total_bytes:
            raise LimitError(f"The archive unpacks to {declared / 1e6:,.0f} MB; at most "
                             f"{max_total_bytes / 1e6:,.0f} MB are allowed ({hint('max_total_bytes')})")
        out, skipped, total = [], [], 0
        for info in infos:
            name = info.filename.replace("\\", "/")
            path = PurePosixPath(name)
            if not path.parts:  # "." or an empty name: nothing to read
                skipped.append(Skipped(name or "(no name)", "not a file name"))
                continue
            if name.startswith("/") or path.is_absolute() or ".." in path.parts or DRIVE.match(path.parts[0]):
                raise DataError(f"Refused archive: member {name!r} points outside the archive")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DataError(f"Refused archive: member {name!r} is a link")
            if any(p.startswith(".") or p == "__MACOSX" for p in path.parts):
                continue
            if path.suffix.lower() in ARCHIVE_SUFFIXES:
                skipped.append(Skipped(name, "nested archive ignored"))
                continue
            if info.file_size > budget.max_file_bytes:
                skipped.append(Skipped(name, over_file_limit(info.file_size, budget)))
                continue
            if check is not None and path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(Skipped(name, "not an image file"))
                continue
            if progress is not None and len(out) % 50 == 0:
                progress(len(out), len(infos))
            blob = _read_member(zf, info, name, min(budget.max_file_bytes, max_total_bytes - total), skipped)
            if blob is None:
                continue
            if check is not None:
                try:
                    check(blob, name)
                except InputError as err:
                    skipped.append(Skipped(name, str(err).removeprefix(f"{name}: ")))
                    out.append((name, None))
                    continue
            total += len(blob)
            out.append((name, blob))
    if progress is not None:
        progress(len(infos), len(infos))
    return out, skipped


def over_file_limit(size: int, budget: Budget) -> str:
    """Why a file is skipped for its size."""
    return (f"{size / MB:,.1f} MB, over the limit of {budget.max_file_bytes / MB:,.0f} MB per file "
            f"({hint('max_file_bytes')})")


ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError, ValueError)


def read_zip_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo | str, limit: int, too_big: str) -> bytes:
    """One member, read in 1 MB blocks and stopped with ``LimitError(too_big)`` past ``limit``
    bytes, whatever size it declares. zipfile's own errors (bad CRC, bad data, encryption:
    RuntimeError) pass through for the caller to name."""
    chunks, size = [], 0
    with zf.open(member) as fh:
        while block := fh.read(MB):
            size += len(block)
            if size > limit:
                raise LimitError(too_big)
            chunks.append(block)
    return b"".join(chunks)


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limit: int,
                 skipped: list[Skipped]) -> bytes | None:
    """An image member within ``limit``; an unreadable one is skipped (appended to ``skipped``)
    and None returned; one larger than it declared refuses the archive."""
    try:
        return read_zip_member(zf, info, limit, f"Refused archive: {name!r} unpacks beyond its declared size "
                                                f"or the archive's limit ({hint('max_total_bytes')})")
    except RuntimeError as err:  # zipfile: "File ... is encrypted, password required for extraction"
        skipped.append(Skipped(name, f"cannot be read: {'encrypted' if 'encrypt' in str(err) else err}"))
    except ZIP_READ_ERRORS as err:
        if isinstance(err, InfiError):
            raise
        skipped.append(Skipped(name, f"cannot be read from the archive ({type(err).__name__}: {err})"))
    return None


def from_zip(data: bytes | Path, max_members: int | None = None, max_total_bytes: int | None = None,
             progress: Progress | None = None) -> ImageSet:
    """A ZIP in ImageFolder layout: ``class_name/image.png`` (an optional single top folder is
    allowed); images at the top level are kept unlabelled. Each image is checked as it is read
    (a bad one's bytes are dropped at once); classes come from every image file's folder."""
    budget = Budget.current()
    members, skipped = safe_zip_members(data, max_members, max_total_bytes, budget,
                                        check=lambda blob, name: check_image(blob, name, budget),
                                        progress=progress)
    parts = [PurePosixPath(n).parts for n, _ in members]
    # Strip one common top folder (zips made by "compress folder").
    if parts and all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    folders = [p[0] if len(p) >= 2 else None for p in parts]
    class_names = tuple(sorted({f for f in folders if f is not None}))
    index = {c: i for i, c in enumerate(class_names)}
    good = [k for k, (_, b) in enumerate(members) if b is not None]
    labels = [index[folders[k]] if folders[k] is not None else -1 for k in good] if class_names else None
    named = [("/".join(parts[k]), members[k][1]) for k in good]
    return _from_blobs(named, labels, class_names or None, {"kind": "zip"}, skipped, checked=True)


def parse_label_csv(data: bytes | str) -> dict[str, str | None]:
    """``image,label`` rows (label optional) -> {image: label}."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(f"labels CSV: not UTF-8 text ({err.reason})") from err
    try:
        return _label_rows(csv.DictReader(io.StringIO(data, newline="")))
    except csv.Error as err:
        raise DataError(f"labels CSV: not a readable CSV ({err})") from err


def _label_rows(reader: csv.DictReader) -> dict[str, str | None]:
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "image" not in fields:
        raise DataError(f"labels CSV: needs an 'image' column (and optionally 'label'); found "
                        f"columns {reader.fieldnames}")
    out: dict[str, str | None] = {}
    for row in reader:
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        name = row.get("image", "")
        if not name:
            continue
        if name in out:
            raise DataError(f"labels CSV: image {name!r} is listed twice")
        out[name] = row.get("label") or None
    if not out:
        raise DataError("labels CSV: no rows")
    return out


def from_files(files: Sequence[tuple[str, bytes]], labels_csv: bytes | str | None = None,
               class_names: Sequence[str] | None = None, progress: Progress | None = None) -> ImageSet:
    """Uploaded images, optionally with a CSV of ``image,label``; rows naming no uploaded image
    and images missing from the CSV are reported."""
    skipped: list[Skipped] = []
    named = list(files)
    budget = Budget.current()
    budget.check("max_images", len(named), "the number of images")
    budget.check("max_total_bytes", sum(len(b) for _, b in named), "the images together")
    labels = None
    names = tuple(class_names) if class_names else None
    if labels_csv is not None:
        table = parse_label_csv(labels_csv)
        present = {n for n, _ in named}
        missing = sorted(set(table) - present)
        if missing:
            skipped.extend(Skipped(m, "listed in the CSV but not uploaded") for m in missing)
        unlisted = [n for n, _ in named if n not in table]
        skipped.extend(Skipped(n, "not listed in the CSV") for n in unlisted)
        named = [(n, b) for n, b in named if n in table]
        given = sorted({v for v in table.values() if v})
        if names is None and given:
            names = tuple(given)
        index = {c: i for i, c in enumerate(names or ())}
        unknown = sorted({table[n] for n, _ in named if table[n] and table[n] not in index})
        if unknown:
            raise DataError(f"labels CSV: label(s) {unknown[:5]} are not among the classes {list(names or ())}")
        if names:
            labels = [index[table[n]] if table[n] else -1 for n, _ in named]
    return _from_blobs(named, labels, names, {"kind": "upload"}, skipped, progress)


def from_folder(path: str | Path, max_members: int | None = None, progress: Progress | None = None) -> ImageSet:
    """A local folder in ImageFolder layout (class sub-folders) or a flat folder of images; file
    counts and sizes are checked from the directory listing before any file is read."""
    budget = Budget.current()
    max_members = max_members or budget.max_images
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and not any(part.startswith(".") for part in p.relative_to(root).parts):
            files.append(p)
            if len(files) > max_members:
                raise LimitError(f"{root}: more than {max_members:,} files ({hint('max_images')})")
    files.sort()
    skipped = [Skipped(str(p.relative_to(root)), "not an image file") for p in files
               if p.suffix.lower() not in IMAGE_SUFFIXES]
    files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    sizes = {p: p.stat().st_size for p in files}
    for p in [p for p in files if sizes[p] > budget.max_file_bytes]:
        skipped.append(Skipped(str(p.relative_to(root)), over_file_limit(sizes[p], budget)))
    files = [p for p in files if sizes[p] <= budget.max_file_bytes]
    budget.check("max_total_bytes", sum(sizes[p] for p in files), f"{root}: its images together")
    rel = [p.relative_to(root) for p in files]
    class_names = tuple(sorted({r.parts[0] for r in rel if len(r.parts) >= 2}))
    index = {c: i for i, c in enumerate(class_names)}
    labels = [index[r.parts[0]] if len(r.parts) >= 2 else -1 for r in rel] if class_names else None
    named, keep_labels = [], []
    for k, (r, p) in enumerate(zip(rel, files)):  # each file checked as it is read: a bad one is not held
        if progress is not None and k % 50 == 0:
            progress(k, len(files))
        try:
            blob = p.read_bytes()
            check_image(blob, r.as_posix(), budget)
        except InputError as err:
            skipped.append(Skipped(r.as_posix(), str(err).removeprefix(f"{r.as_posix()}: ")))
            continue
        except OSError as err:
            skipped.append(Skipped(r.as_posix(), f"cannot be read ({err.strerror or err})"))
            continue
        named.append((r.as_posix(), blob))
        if labels is not None:
            keep_labels.append(labels[k])
    if progress is not None:
        progress(len(files), len(files))
    return _from_blobs(named, keep_labels if labels is not None else None, class_names or None,
                       {"kind": "folder", "path": str(root)}, skipped, checked=True)


def from_hf_dataset(name: str, split: str = "train", image_column: str = "image",
                    label_column: str | None = "label", limit: int | None = 5000) -> ImageSet:
    """A Hugging Face ``datasets`` id (needs the optional ``datasets`` package and a network)."""
    try:
        import datasets  # type: ignore
    except ImportError:
        raise DataError("Loading a Hugging Face dataset needs the optional 'datasets' package: "
                        "pip install datasets") from None
    ds = datasets.load_dataset(name, split=split)
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    if image_column not in ds.column_names:
        raise DataError(f"{name}: no column {image_column!r}; columns are {ds.column_names}")
    named = []
    for i, row in enumerate(ds):
        buf = io.BytesIO()
        to_rgb(row[image_column]).save(buf, format="PNG")
        named.append((f"{i:06d}", buf.getvalue()))
    labels, names = None, None
    if label_column and label_column in ds.column_names:
        feature = ds.features[label_column]
        names = tuple(getattr(feature, "names", None) or sorted({str(v) for v in ds[label_column]}))
        column = ds[label_column]
        labels = list(column) if hasattr(feature, "names") else [names.index(str(v)) for v in column]
    return _from_blobs(named, labels, names, {"kind": "hf-dataset", "name": name, "split": split}, [])


# --- CIFAR -------------------------------------------------------------------------------------


class _ArraysOnlyUnpickler:
    """Reads the CIFAR "python version" batches, which are pickles, allowing only the numpy
    array reconstruction they need; any other class in the file is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    @classmethod
    def load(cls, path: Path) -> dict:
        import pickle

        allowed = cls.ALLOWED

        class Restricted(pickle.Unpickler):
            def find_class(self, module: str, name: str):
                if (module, name) in allowed:
                    return super().find_class(module, name)
                raise DataError(f"{path.name}: refused, it asks for {module}.{name}; only plain "
                                "arrays are read from CIFAR batches")

        with open(path, "rb") as fh:
            data = Restricted(fh, encoding="bytes").load()
        if not isinstance(data, dict):
            raise DataError(f"{path.name}: not a CIFAR batch")
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def from_cifar(folder: str | Path, split: str = "train", limit: int | None = None) -> ImageSet:
    """CIFAR-10 or CIFAR-100 from its python-version folder (data_batch_* / train, test, meta);
    the fine labels for CIFAR-100."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if (root / "meta").is_file():  # CIFAR-100
        files = [root / ("train" if split == "train" else "test")]
        meta = _ArraysOnlyUnpickler.load(root / "meta")
        names = tuple(n.decode() if isinstance(n, bytes) else n for n in meta["fine_label_names"])
        label_key = "fine_labels"
    elif (root / "batches.meta").is_file():  # CIFAR-10
        files = sorted(root.glob("data_batch_*")) if split == "train" else [root / "test_batch"]
        meta = _ArraysOnlyUnpickler.load(root / "batches.meta")
        names = tuple(n.decode() if isinstance(n, bytes) else n for n in meta["label_names"])
        label_key = "labels"
    else:
        raise DataError(f"{root}: no CIFAR 'meta' or 'batches.meta' file; give the extracted "
                        "cifar-10-batches-py or cifar-100-python folder")
    arrays, labels = [], []
    for f in files:
        if not f.is_file():
            raise DataError(f"{root}: missing {f.name}")
        batch = _ArraysOnlyUnpickler.load(f)
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        arrays.append(data)
        labels.extend(batch[label_key])
    images = np.concatenate(arrays)
    labels_arr = np.asarray(labels, dtype=np.int64)
    if limit:
        images, labels_arr = images[:limit], labels_arr[:limit]
    ids = [f"{split}-{i:05d}" for i in range(len(images))]
    return ImageSet(ids, lambda i: Image.fromarray(images[i]), labels_arr, names,
                    {"kind": "cifar", "path": str(root), "split": split}, [],
                    _hash(ids, (a.tobytes() for a in images)), images)
