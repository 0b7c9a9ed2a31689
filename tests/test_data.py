"""ImageSet sources and every kind of bad input: skipped and listed, or a clear error."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from infi.data import DataError, decode_image, from_cifar, from_files, from_folder, from_zip
from infi.demo.world import from_world, generate_world
from infi.errors import LimitError
from tests.helpers import make_zip, png_bytes


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "RGB"])
def test_every_mode_becomes_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    img = decode_image(png_bytes(mode, fmt=fmt), f"x.{fmt.lower()}")
    assert img.mode == "RGB" and img.size == (16, 16)


def test_transparent_pixels_become_white():
    arr = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    assert np.asarray(decode_image(buf.getvalue())).min() == 255


def test_zip_imagefolder_with_corrupt_and_stray_files_keeps_the_valid_images():
    blob = make_zip({
        "cats/a.png": png_bytes(value=10), "cats/b.png": png_bytes(value=20),
        "dogs/c.jpg": png_bytes(value=30, fmt="JPEG"),
        "dogs/broken.png": b"\x89PNG\r\n\x1a\n not really",
        "dogs/notes.txt": b"hello", "dogs/inner.zip": make_zip({"x.png": png_bytes()}),
        "__MACOSX/._a.png": b"junk",
    })
    data = from_zip(blob)
    assert data.class_names == ("cats", "dogs")
    assert data.ids == ["cats/a.png", "cats/b.png", "dogs/c.jpg"]
    assert data.labels.tolist() == [0, 0, 1]
    reasons = {s.name: s.reason for s in data.skipped}
    assert "corrupt" in reasons["dogs/broken.png"] or "not an image" in reasons["dogs/broken.png"]
    assert reasons["dogs/notes.txt"] == "not an image file"
    assert "nested archive" in reasons["dogs/inner.zip"]
    assert data.image(2).mode == "RGB"


def test_zip_with_one_top_folder_is_unwrapped():
    data = from_zip(make_zip({"root/a/x.png": png_bytes(), "root/b/y.png": png_bytes()}))
    assert data.class_names == ("a", "b")


@pytest.mark.parametrize("name", ["../evil.png", "/abs/evil.png", "a/../../evil.png"])
def test_zip_with_escaping_paths_is_refused(name):
    with pytest.raises(DataError, match="outside the archive"):
        from_zip(make_zip({name: png_bytes(), "a/ok.png": png_bytes()}))


def test_zip_with_links_is_refused():
    with pytest.raises(DataError, match="link"):
        from_zip(make_zip({"a/ok.png": png_bytes()}, links={"a/link.png": "/etc/passwd"}))


def test_zip_caps_member_count_and_size():
    blob = make_zip({f"a/{i}.png": png_bytes() for i in range(5)})
    with pytest.raises(LimitError, match="at most 3 are allowed .set INFI_LIMIT_MAX_IMAGES"):
        from_zip(blob, max_members=3)
    with pytest.raises(LimitError, match="unpacks to"):
        from_zip(blob, max_total_bytes=100)


def test_not_a_zip_and_empty_zip_are_clear_errors():
    with pytest.raises(DataError, match="ZIP"):
        from_zip(b"plain bytes")
    with pytest.raises(DataError, match="empty"):
        from_zip(make_zip({"a/readme.txt": b"no images"}))


def test_decompression_bomb_is_an_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match="decompression bomb"):
        decode_image(png_bytes(size=12), "bomb.png")  # 144 pixels > 100: Pillow warns


def _noisy(fmt):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _truncated(fmt):
    data = _noisy(fmt)
    return data[: len(data) // 2]


def _flipped_png():
    data = bytearray(_noisy("PNG"))
    data[len(data) // 2] ^= 0xFF  # inside the image data: the chunk CRC no longer matches
    return bytes(data)


@pytest.mark.parametrize("make_bad", [lambda: _truncated("PNG"), lambda: _truncated("JPEG"),
                                      _flipped_png, lambda: _truncated("GIF")],
                         ids=["truncated-png", "truncated-jpeg", "flipped-png", "truncated-gif"])
def test_damaged_images_are_skipped_and_the_rest_survive(make_bad):
    data = from_files([("ok.png", png_bytes()), ("bad.img", make_bad()), ("ok.jpg", png_bytes(fmt="JPEG"))])
    assert data.ids == ["ok.png", "ok.jpg"]
    assert [s.name for s in data.skipped] == ["bad.img"]
    assert "corrupt or truncated" in data.skipped[0].reason
    assert all(img.mode == "RGB" for img in data.images())


def _png_with_corrupt_data_and_valid_crcs() -> bytes:
    """Flip bytes inside the compressed IDAT stream and recompute the chunk CRC: verify() passes,
    only a real decode fails (this once crashed the Data page's thumbnails on every rerun)."""
    import struct
    import zlib

    data = bytearray(_noisy("PNG"))
    at = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[at:at + 4])[0]
    body = at + 8
    for k in range(body + length // 2, body + length // 2 + 16):
        data[k] ^= 0x5A
    data[body + length:body + length + 4] = struct.pack(">I", zlib.crc32(data[at + 4:body + length]))
    return bytes(data)


def test_loading_decodes_every_image_so_no_page_meets_a_broken_one_later():
    good = png_bytes(size=64)
    thin = io.BytesIO()
    Image.new("RGB", (4000, 10)).save(thin, "PNG")
    data = from_files([("good.png", good), ("crc-ok-data-bad.png", _png_with_corrupt_data_and_valid_crcs()),
                       ("thin.png", thin.getvalue())])
    assert data.ids == ["good.png"]
    reasons = {s.name: s.reason for s in data.skipped}
    assert "corrupt or truncated" in reasons["crc-ok-data-bad.png"]
    assert "side ratio of 4000×10 (too thin" in reasons["thin.png"]
    assert "INFI_LIMIT_MAX_IMAGE_SIDE_RATIO" in reasons["thin.png"]


def test_high_bit_depth_images_are_checked_against_the_budget_before_decoding(monkeypatch):
    deep = io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(deep, "PNG")
    img = decode_image(deep.getvalue(), "deep.png")
    assert img.mode == "RGB" and np.asarray(img).max() == 255 and np.asarray(img).min() == 0
    monkeypatch.setenv("INFI_LIMIT_MAX_DECODED_BYTES", str(64 * 64 * 2 - 1))
    with pytest.raises(LimitError, match=r"deep.png: decoded size \(I;16, 64×64\): 8.0 KB is over the limit"):
        decode_image(deep.getvalue(), "deep.png")


def test_exif_orientation_is_applied():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (40, 20), "red").save(buf, "JPEG", exif=exif)
    assert decode_image(buf.getvalue()).size == (20, 40)


def test_files_with_csv_labels_and_mismatches():
    files = [("a.png", png_bytes()), ("b.png", png_bytes()), ("c.png", png_bytes())]
    data = from_files(files, b"image,label\na.png,cat\nb.png,dog\nmissing.png,cat\n")
    assert data.ids == ["a.png", "b.png"] and data.class_names == ("cat", "dog")
    reasons = {s.name: s.reason for s in data.skipped}
    assert reasons["missing.png"] == "listed in the CSV but not uploaded"
    assert reasons["c.png"] == "not listed in the CSV"


def test_csv_without_labels_gives_unlabelled_images():
    data = from_files([("a.png", png_bytes())], b"image\na.png\n")
    assert data.labels is None and len(data) == 1


@pytest.mark.parametrize("csv, message", [
    (b"file,class\na.png,cat\n", "'image' column"),
    (b"image,label\na.png,cat\na.png,dog\n", "listed twice"),
    (b"image,label\n", "no rows"),
])
def test_bad_csvs_are_named(csv, message):
    with pytest.raises(DataError, match=message):
        from_files([("a.png", png_bytes())], csv)


def test_labels_outside_the_class_list_are_an_error():
    with pytest.raises(DataError, match="not among the classes"):
        from_files([("a.png", png_bytes())], b"image,label\na.png,zebra\n", class_names=["cat", "dog"])


def test_duplicate_ids_are_an_error():
    with pytest.raises(DataError, match="Duplicate"):
        from_files([("a.png", png_bytes()), ("a.png", png_bytes())])


def test_folder_source_and_content_hash(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "1.png").write_bytes(png_bytes(value=1))
    (tmp_path / "y" / "2.png").write_bytes(png_bytes(value=2))
    (tmp_path / "y" / "bad.png").write_bytes(b"garbage")
    a = from_folder(tmp_path)
    assert a.ids == ["x/1.png", "y/2.png"] and a.labels.tolist() == [0, 1]
    assert [s.name for s in a.skipped] == ["y/bad.png"]
    (tmp_path / "y" / "2.png").write_bytes(png_bytes(value=3))
    assert from_folder(tmp_path).content_hash != a.content_hash
    with pytest.raises(DataError, match="not a folder"):
        from_folder(tmp_path / "nope")


def test_world_image_set_keeps_arrays_and_labels():
    world = generate_world(12, seed=2)
    data = from_world(world)
    assert data.as_arrays(64) is world.images
    assert data.labels.tolist() == world.labels.tolist()
    assert data.as_arrays(32).shape == (12, 32, 32, 3)
    assert from_world(generate_world(12, seed=2)).content_hash == data.content_hash


def write_fake_cifar10(folder, n=6):
    import pickle

    rng = np.random.default_rng(0)
    folder.mkdir()
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [b"cat", b"dog"]}, fh)
    for name in ("data_batch_1", "test_batch"):
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                         b"labels": [i % 2 for i in range(n)]}, fh)


def test_cifar_python_batches_are_read_as_arrays(tmp_path):
    write_fake_cifar10(tmp_path / "cifar")
    data = from_cifar(tmp_path / "cifar", "train")
    assert len(data) == 6 and data.class_names == ("cat", "dog")
    assert data.as_arrays(32).shape == (6, 32, 32, 3) and data.labels.tolist() == [0, 1] * 3
    assert len(from_cifar(tmp_path / "cifar", "test", limit=4)) == 4


def test_cifar_batch_with_code_in_it_is_refused(tmp_path):
    import os
    import pickle

    write_fake_cifar10(tmp_path / "cifar")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "cifar" / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh)
    with pytest.raises(DataError, match="refused"):
        from_cifar(tmp_path / "cifar", "train")
    with pytest.raises(DataError, match="no CIFAR"):
        from_cifar(tmp_path, "train")


def _zip_with_unreadable_members() -> bytes:
    """Five good images, one stored member with a bad CRC, one with broken deflate data and one
    marked encrypted: each once lost the whole archive with an unexpected error."""
    import struct

    good = {f"a/{i}.png": png_bytes() for i in range(5)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, blob in good.items():
            zf.writestr(name, blob)
        zf.writestr(zipfile.ZipInfo("b/bad_crc.png"), png_bytes())
        zf.writestr("b/bad_deflate.png", _noisy("BMP"), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(zipfile.ZipInfo("b/secret.png"), png_bytes())
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        infos = {i.filename: i for i in zf.infolist()}

    def payload(info):
        name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
        return info.header_offset + 30 + name_len + extra_len

    data[payload(infos["b/bad_crc.png"]) + 40] ^= 0xFF
    start = payload(infos["b/bad_deflate.png"])
    data[start + 10:start + 60] = bytes(50)
    data[infos["b/secret.png"].header_offset + 6] |= 1  # general purpose flag bit 0: encrypted
    for k in range(len(data) - 4):  # and the same flag in the central directory
        if data[k:k + 4] == b"PK\x01\x02" and data[k + 46:k + 46 + 12] == b"b/secret.png":
            data[k + 8] |= 1
    return bytes(data)


def test_unreadable_archive_members_are_skipped_and_named():
    data = from_zip(_zip_with_unreadable_members())
    assert sorted(data.ids) == sorted(f"a/{i}.png" for i in range(5))
    reasons = {s.name: s.reason for s in data.skipped}
    assert set(reasons) == {"b/bad_crc.png", "b/bad_deflate.png", "b/secret.png"}, reasons
    assert reasons["b/secret.png"] == "cannot be read: encrypted"
    assert "BadZipFile" in reasons["b/bad_crc.png"]


def test_lazy_images_decode_only_the_slice_asked_for():
    data = from_files([(f"{i}.png", png_bytes(value=10 * i)) for i in range(6)])
    decoded = []
    loader = data.loader
    data.loader = lambda i: decoded.append(i) or loader(i)
    lazy = data.lazy()
    assert len(lazy) == 6 and decoded == []
    batch = lazy[2:5]
    assert decoded == [2, 3, 4] and [np.asarray(im)[0, 0, 0] for im in batch] == [20, 30, 40]
