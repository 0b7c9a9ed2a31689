"""One resource budget for everything a person can send: images, archives, prediction files,
bundles, generated worlds, concept lists. Loaders check it *before* they allocate (headers and
declared sizes first, running byte counts while streaming) and a refusal names the limit, the
value seen and how to raise it.

Defaults suit a laptop; ``INFI_HOSTED=1`` selects lower ones for a shared server with 1–2.7 GB.
Each limit can be raised (or lowered) with an environment variable ``INFI_LIMIT_<NAME>``, e.g.
``INFI_LIMIT_MAX_IMAGES=200000``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from infi.errors import ConfigError, LimitError

MB = 1024**2


@dataclass(frozen=True)
class Budget:
    """The most Infi reads from one input; see the module docstring for how to change them."""

    max_images: int = 50_000  # images in one dataset (archive members, files, folder entries)
    max_pixels: int = 40_000_000  # width × height of one image (a 6000 × 6000 photo is 36 M)
    max_image_side_ratio: int = 50  # longest side / shortest side: thumbnails need both sides
    max_file_bytes: int = 64 * MB  # one image file or archive member, compressed
    max_decoded_bytes: int = 256 * MB  # one image decoded at its own bit depth
    max_total_bytes: int = 2048 * MB  # all members of an archive or folder together, unpacked
    max_prediction_rows: int = 2_000_000
    max_prediction_columns: int = 10_000
    max_prediction_bytes: int = 512 * MB  # a predictions file as uploaded
    max_bundle_bytes: int = 2048 * MB  # a session bundle, every member together, unpacked
    max_world_images: int = 50_000  # a generated Shapes World (a bundle can ask for one)
    max_concepts: int = 5_000
    max_concept_chars: int = 200
    max_store_rows: int = 5_000_000  # images in one embedding store (infi embed --out)
    max_store_bytes: int = 8192 * MB  # a store's embeddings and scores, held in memory once opened

    @classmethod
    def hosted_defaults(cls) -> Budget:
        """Lower limits for a shared server: a visitor's upload must not take it down."""
        return cls(max_images=5_000, max_pixels=16_000_000, max_file_bytes=32 * MB,
                   max_decoded_bytes=96 * MB, max_total_bytes=400 * MB, max_prediction_rows=200_000,
                   max_prediction_columns=2_000, max_prediction_bytes=64 * MB, max_bundle_bytes=400 * MB,
                   max_world_images=5_000, max_concepts=2_000, max_store_rows=200_000,
                   max_store_bytes=600 * MB)

    @classmethod
    def current(cls) -> Budget:
        """The budget in force: hosted or local defaults, then ``INFI_LIMIT_*`` overrides."""
        base = cls.hosted_defaults() if hosted() else cls()
        changes = {}
        for f in fields(cls):
            raw = os.environ.get(env_name(f.name))
            if raw is None or not raw.strip():
                continue
            try:
                value = int(float(raw))
            except ValueError:
                raise ConfigError(f"{env_name(f.name)}={raw!r}: not a number") from None
            if value <= 0:
                raise ConfigError(f"{env_name(f.name)}={raw!r}: must be positive")
            changes[f.name] = value
        return replace(base, **changes)

    def check(self, name: str, value: int | float, what: str) -> None:
        """Raise a ``LimitError`` naming ``what``, the value seen and how to raise the limit."""
        limit = getattr(self, name)
        if value > limit:
            raise LimitError(f"{what}: {describe(name, value)} is over the limit of {describe(name, limit)} "
                             f"({hint(name)})")


def env_name(limit: str) -> str:
    return f"INFI_LIMIT_{limit.upper()}"


def hint(limit: str) -> str:
    where = "on this hosted deployment the operator can set" if hosted() else "set"
    return f"{where} {env_name(limit)} to change it"


def describe(limit: str, value: float) -> str:
    if limit.endswith("_bytes"):
        return f"{value / MB:,.1f} MB" if value >= MB else f"{value / 1024:,.1f} KB"
    if limit == "max_image_side_ratio":
        return f"{value:,.0f}:1"
    return f"{value:,.0f}"


def hosted() -> bool:
    """``INFI_HOSTED=1``: a shared deployment (lower limits, no server paths, nothing on disk)."""
    return os.environ.get("INFI_HOSTED", "").strip().lower() in ("1", "true", "yes")
