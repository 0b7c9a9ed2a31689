"""Small builders shared by tests: image bytes in many modes, zips, worlds as ImageSets."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image


def png_bytes(mode: str = "RGB", size: int = 16, value: int = 120, fmt: str = "PNG") -> bytes:
    if mode == "I;16":
        img = Image.new("I;16", (size, size), value * 200)
    else:
        img = Image.new(mode, (size, size), color=value if mode in ("L", "P", "I") else None)
        if mode not in ("L", "P", "I"):
            arr = np.full((size, size, len(mode)), value, np.uint8)
            img = Image.fromarray(arr, mode=mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()
