"""A content-addressed cache of arrays (embeddings, teacher outputs), in memory and on disk.

Keys are hashes of everything a result depends on (dataset content hash, model id, settings), so
a hit is always the right answer and a second run over the same images and encoder is free.
Disk entries are safetensors files: data only, nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file


def cache_key(*parts: object) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def default_cache_dir() -> Path:
    return Path(os.environ.get("INFI_CACHE_DIR", Path.home() / ".cache" / "infi"))


class ArrayCache:
    """LRU memory cache, bounded in items and bytes, backed by an optional directory of
    safetensors files (which is what makes a second run free)."""

    def __init__(self, directory: Path | str | None = None, max_items: int = 32,
                 max_bytes: int = 512 * 1024**2):
        self.directory = Path(directory) if directory is not None else None
        self.max_items = max_items
        self.max_bytes = max_bytes  # the memory part is bounded in bytes, not only in items
        self._memory: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path | None:
        return self.directory / f"{key}.safetensors" if self.directory is not None else None

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            return self._memory[key]
        path = self._path(key)
        if path is not None and path.is_file():
            try:
                arrays = load_file(str(path))
            except Exception:  # noqa: BLE001 - a torn or foreign file is a miss, and is replaced on the next put
                self.misses += 1
                return None
            self._remember(key, arrays)
            self.hits += 1
            return arrays
        self.misses += 1
        return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        self._remember(key, arrays)
        path = self._path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file(arrays, str(tmp))
            os.replace(tmp, path)

    def _remember(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        self._memory[key] = arrays
        self._memory.move_to_end(key)
        while len(self._memory) > 1 and (len(self._memory) > self.max_items or self.nbytes > self.max_bytes):
            self._memory.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (the newest entry is kept even when it alone is over the bound)."""
        return sum(a.nbytes for arrays in self._memory.values() for a in arrays.values())
