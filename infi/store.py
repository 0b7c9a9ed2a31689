"""Embedding stores: a folder of Parquet shards (``id``, ``path``, ``label``, global ``embedding``
and, optionally, concept ``scores``) and a ``manifest.json`` (encoder, corpus and its hash, region
mode, dense method, count, a hash of the id list, the shards).

``infi embed`` writes one (in process or on a Ray cluster, ``infi.bulk_embed``); the app and the
CLI open it as a dataset whose pixels are never loaded: everything after embedding needs arrays
only. The manifest is written last, so a folder without one is an embedding run that did not
finish. Opening checks the manifest, every shard's row count and schema, the id hash and the
budget (rows and bytes) before the arrays are allocated.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infi.concepts import ConceptMatrix
from infi.corpus import Corpus
from infi.errors import DataError, InputError
from infi.limits import Budget

FORMAT = "infi-embedding-store"
VERSION = 1
MANIFEST = "manifest.json"
SHARD_ROWS = 50_000  # rows per Parquet shard: ~100 MB of ViT-B embeddings
MAX_MANIFEST_BYTES = 16 * 1024**2
READ_BATCH = 8192  # rows per row group and per record batch read: reading holds one at a time
MAX_LISTED_SKIPS = 1000  # skipped files named in the manifest (all are counted)
UNIT_TOLERANCE = 1e-3  # stored embeddings are unit vectors


def ids_hash(ids: Sequence[str]) -> str:
    """The content hash of a store: its ids in order (its pixels are not at hand to hash)."""
    digest = hashlib.sha256()
    _hash_ids(digest, ids)
    return "ids:" + digest.hexdigest()


def _hash_ids(digest, ids: Sequence[str]) -> None:
    """Feed ids to a digest, each ended by a NUL (the writer hashes shard by shard, the reader at once)."""
    for i in ids:
        digest.update(str(i).encode())
        digest.update(b"\0")


def corpus_hash(corpus: Corpus | None) -> str | None:
    if corpus is None:
        return None
    return hashlib.sha256(json.dumps(corpus.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass
class StoreSpec:
    """What a store holds besides its rows: the encoder, and how scores were made, if any."""

    encoder: str
    dim: int
    grid: int
    corpus: Corpus | None = None  # scores were computed for this corpus (None: embeddings only)
    mode: str = "global"
    dense: str = "vanilla"
    resolution: int | None = None
    engine: str = "local"


class StoreWriter:
    """Rows in, Parquet shards out; ``close`` writes the manifest (last, so a crashed run leaves
    no store that looks whole). Refuses a folder holding anything but an old store, which it
    replaces only with ``overwrite``."""

    def __init__(self, folder: str | Path, spec: StoreSpec, shard_rows: int = SHARD_ROWS,
                 overwrite: bool = False):
        self.folder = Path(folder)
        self.spec = spec
        self.shard_rows = int(shard_rows)
        _prepare_folder(self.folder, overwrite)
        self.n_scores = len(spec.corpus) if spec.corpus is not None else 0
        self._buffer: list[dict] = []
        self._buffered = 0
        self.shards: list[dict] = []
        self.count = 0
        self._ids = hashlib.sha256()
        self._labels: set[str] = set()
        self.skipped: list[dict] = []
        self.skipped_count = 0

    def write(self, ids: Sequence[str], embeddings: np.ndarray, scores: np.ndarray | None = None,
              paths: Sequence[str | None] | None = None, labels: Sequence[str | None] | None = None) -> None:
        """Append rows: ids [B], unit embeddings [B, D], scores [B, K] when the spec has a corpus."""
        n = len(ids)
        embeddings = np.asarray(embeddings, np.float32).reshape(n, -1)
        if embeddings.shape[1] != self.spec.dim:
            raise InputError(f"store: embeddings of width {embeddings.shape[1]}, the store's is {self.spec.dim}")
        if self.n_scores and (scores is None or np.shape(scores) != (n, self.n_scores)):
            raise InputError(f"store: expected scores of shape ({n}, {self.n_scores})")
        self._buffer.append({"id": [str(i) for i in ids], "embedding": embeddings,
                             "scores": None if not self.n_scores else np.asarray(scores, np.float32),
                             "path": list(paths) if paths is not None else [None] * n,
                             "label": list(labels) if labels is not None else [None] * n})
        _hash_ids(self._ids, ids)
        self._labels.update(lbl for lbl in (labels or ()) if lbl)
        self._buffered += n
        self.count += n
        while self._buffered >= self.shard_rows:
            self._flush(self.shard_rows)

    def skip(self, image_id: str, reason: str) -> None:
        """A file that could not be embedded: counted, and named while the list is short."""
        self.skipped_count += 1
        if len(self.skipped) < MAX_LISTED_SKIPS:
            self.skipped.append({"id": str(image_id), "reason": str(reason)})

    def _flush(self, rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        taken: dict[str, list] = {"id": [], "embedding": [], "scores": [], "path": [], "label": []}
        need = rows
        while need and self._buffer:
            part = self._buffer[0]
            n = len(part["id"])
            take = min(n, need)
            for key in taken:
                if part[key] is not None:
                    taken[key].append(part[key][:take])
            if take == n:
                self._buffer.pop(0)
            else:
                self._buffer[0] = {k: (v[take:] if v is not None else None) for k, v in part.items()}
            need -= take
        emb = np.concatenate(taken["embedding"])
        columns = {"id": pa.array([i for part in taken["id"] for i in part], pa.string()),
                   "path": pa.array([p for part in taken["path"] for p in part], pa.string()),
                   "label": pa.array([lbl for part in taken["label"] for lbl in part], pa.string()),
                   "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1])}
        if self.n_scores:
            sc = np.concatenate(taken["scores"])
            columns["scores"] = pa.FixedSizeListArray.from_arrays(pa.array(sc.reshape(-1)), sc.shape[1])
        name = f"part-{len(self.shards):05d}.parquet"
        pq.write_table(pa.table(columns), self.folder / name, row_group_size=READ_BATCH)
        self.shards.append({"file": name, "rows": len(emb)})
        self._buffered -= len(emb)

    def close(self, extra: dict | None = None) -> dict:
        """Flush the last shard and write the manifest; returns it."""
        if self._buffered:
            self._flush(self._buffered)
        if not self.count:
            raise DataError("store: no image could be embedded"
                            + (f" ({self.skipped_count} skipped, e.g. {self.skipped[0]})" if self.skipped else ""))
        spec = self.spec
        manifest = {
            "format": FORMAT, "version": VERSION, "encoder": spec.encoder, "dim": spec.dim, "grid": spec.grid,
            "corpus": spec.corpus.to_dict() if spec.corpus is not None else None,
            "corpus_hash": corpus_hash(spec.corpus),
            "concepts": list(spec.corpus.concepts) if spec.corpus is not None else None,
            "mode": spec.mode if spec.corpus is not None else None,
            "dense": spec.dense, "resolution": spec.resolution, "count": self.count,
            "ids_hash": "ids:" + self._ids.hexdigest(), "class_names": sorted(self._labels) or None,
            "shards": self.shards, "engine": spec.engine, "skipped": self.skipped,
            "skipped_count": self.skipped_count, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra or {}),
        }
        tmp = self.folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.folder / MANIFEST)
        return manifest


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out: {folder} is a file; give a folder for the store")
    if folder.is_dir():
        entries = [p for p in folder.iterdir()]
        ours = all(p.name == MANIFEST or p.name == MANIFEST + ".tmp" or
                   (p.name.startswith("part-") and p.suffix == ".parquet") for p in entries)
        if entries and not ours:
            raise InputError(f"{folder}: the folder holds other files; give an empty or new folder for the store")
        if entries and not overwrite:
            raise InputError(f"{folder}: a store (or an unfinished one) is there already; pass --overwrite to "
                             "replace it, or give another folder")
        for p in entries:
            p.unlink()
    folder.mkdir(parents=True, exist_ok=True)


# --- reading ------------------------------------------------------------------------------------


@dataclass
class EmbeddingStore:
    """An opened store: ids, unit embeddings [N, D], optional scores [N, K], labels and paths."""

    folder: Path
    manifest: dict
    ids: list[str]
    embeddings: np.ndarray
    scores: np.ndarray | None = None
    paths: list[str | None] | None = None
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    readable: bool = field(default=False)  # whether image paths can be read here (thumbnails)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def encoder(self) -> str:
        return str(self.manifest["encoder"])

    @property
    def content_hash(self) -> str:
        return str(self.manifest["ids_hash"])

    def reference(self) -> dict:
        """The session's ``dataset_ref``: images referenced by id, held as embeddings."""
        return {"ids": list(self.ids), "content_hash": self.content_hash,
                "source": {"kind": "embedding store", "path": str(self.folder), "encoder": self.encoder},
                "n": len(self.ids), "classes": list(self.class_names or ())}

    def stored_scores(self, corpus: Corpus, mode: str, dense: str, resolution: int | None) -> ConceptMatrix | None:
        """The scores computed while embedding, when they are for this region setting and the
        corpus is the stored list or part of it (same prompt templates): those columns."""
        m = self.manifest
        if self.scores is None or m.get("mode") != mode or not m.get("corpus"):
            return None
        if mode != "global" and (m.get("dense") != dense or m.get("resolution") != resolution):
            return None
        made = Corpus.from_dict(m["corpus"])
        position = {c: j for j, c in enumerate(made.concepts)}
        if made.templates != corpus.templates or any(c not in position for c in corpus.concepts):
            return None
        if corpus.concepts == made.concepts:
            return ConceptMatrix(self.scores, made.concepts, mode)
        return ConceptMatrix(self.scores[:, [position[c] for c in corpus.concepts]], tuple(corpus.concepts), mode)

    def image(self, i: int):
        """The image of row ``i`` when its path is readable here, else None (thumbnails only)."""
        from infi.data import decode_image

        path = self.paths[i] if self.paths is not None else None
        if not path:
            return None
        try:
            p = Path(path)
            budget = Budget.current()
            if not p.is_file() or p.stat().st_size > budget.max_file_bytes:
                return None
            return decode_image(p.read_bytes(), self.ids[i], budget)
        except (OSError, InputError):
            return None


def read_manifest(folder: str | Path) -> dict:
    """The manifest, checked field by field (nothing in it is executed)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (an embedding store is a folder made by `infi embed`)")
    path = folder / MANIFEST
    if not path.is_file():
        partial = any(p.name.startswith("part-") for p in folder.iterdir())
        raise DataError(f"{folder}: no {MANIFEST}; " + ("the embedding run that wrote it did not finish"
                                                        if partial else "not an embedding store"))
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise DataError(f"{path}: larger than {MAX_MANIFEST_BYTES // 1024**2} MB; not a store manifest")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise DataError(f"{path}: not an Infi embedding store manifest")
    if m.get("version") != VERSION:
        raise DataError(f"{path}: store version {m.get('version')!r}; this Infi reads version {VERSION}")
    for key, kind in (("encoder", str), ("dim", int), ("grid", int), ("count", int), ("ids_hash", str),
                      ("shards", list)):
        if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
            raise DataError(f"{path}: field {key!r} missing or not a {kind.__name__}")
    if m["dim"] < 1 or m["count"] < 1:
        raise DataError(f"{path}: dim and count must be positive")
    for shard in m["shards"]:
        name = shard.get("file") if isinstance(shard, dict) else None
        if (not isinstance(name, str) or Path(name).name != name or not name.endswith(".parquet")
                or not isinstance(shard.get("rows"), int) or shard["rows"] < 0):
            raise DataError(f"{path}: a shard entry is not a file name in the store and a row count: {shard!r}")
    if sum(s["rows"] for s in m["shards"]) != m["count"]:
        raise DataError(f"{path}: the shards hold {sum(s['rows'] for s in m['shards'])} rows, the manifest "
                        f"says {m['count']}")
    if m.get("corpus") is not None:
        corpus = Corpus.from_dict(m["corpus"])
        if corpus_hash(corpus) != m.get("corpus_hash") or list(corpus.concepts) != m.get("concepts"):
            raise DataError(f"{path}: the corpus does not match its hash or concept list")
    return m


def open_store(folder: str | Path, budget: Budget | None = None,
               progress=None) -> EmbeddingStore:
    """Open a store: manifest, budget (rows; bytes of the arrays), then each shard's metadata and
    schema before its columns are read into arrays allocated once."""
    import pyarrow.parquet as pq

    budget = budget or Budget.current()
    folder = Path(folder).expanduser().resolve()
    m = read_manifest(folder)
    n, dim = m["count"], m["dim"]
    k = len(m["concepts"]) if m.get("concepts") else 0
    budget.check("max_store_rows", n, f"{folder.name}: its rows")
    budget.check("max_store_bytes", n * (dim + k) * 4, f"{folder.name}: its embeddings and scores in memory")
    embeddings = np.empty((n, dim), np.float32)
    scores = np.empty((n, k), np.float32) if k else None
    ids: list[str] = []
    paths: list[str | None] = []
    labels: list[str | None] = []
    row = 0
    for s, shard in enumerate(m["shards"]):
        path = folder / shard["file"]
        if not path.is_file():
            raise DataError(f"{folder.name}: shard {shard['file']} is missing")
        try:
            pf = pq.ParquetFile(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for damaged files
            raise DataError(f"{folder.name}/{shard['file']}: not a readable Parquet file ({err})") from None
        if pf.metadata.num_rows != shard["rows"]:
            raise DataError(f"{folder.name}/{shard['file']}: {pf.metadata.num_rows} rows, the manifest says "
                            f"{shard['rows']}")
        names = set(pf.schema_arrow.names)
        need = {"id", "embedding"} | ({"scores"} if k else set())
        if not need <= names:
            raise DataError(f"{folder.name}/{shard['file']}: columns {sorted(names)}; a store shard needs "
                            f"{sorted(need)}")
        _check_width(pf.schema_arrow.field("embedding").type, dim, f"{folder.name}/{shard['file']}: embedding")
        if k:
            _check_width(pf.schema_arrow.field("scores").type, k, f"{folder.name}/{shard['file']}: scores")
        columns = [c for c in ("id", "path", "label", "embedding", "scores") if c in names and (c != "scores" or k)]
        at = row
        for batch in pf.iter_batches(batch_size=READ_BATCH, columns=columns):  # small batches: low peak memory
            rows = slice(at, at + batch.num_rows)
            embeddings[rows] = _fixed_list(batch.column("embedding"), dim)
            if k:
                scores[rows] = _fixed_list(batch.column("scores"), k)
            ids += [str(i) for i in batch.column("id").to_pylist()]
            paths += batch.column("path").to_pylist() if "path" in names else [None] * batch.num_rows
            labels += batch.column("label").to_pylist() if "label" in names else [None] * batch.num_rows
            at += batch.num_rows
        if at != row + shard["rows"]:
            raise DataError(f"{folder.name}/{shard['file']}: read {at - row} rows, the manifest says {shard['rows']}")
        row = at
        if progress:
            progress(s + 1, len(m["shards"]))
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # the reader's buffers, kept by the allocator otherwise
    if any(i is None for i in ids):
        raise DataError(f"{folder.name}: a row has no id")
    if ids_hash(ids) != m["ids_hash"]:
        raise DataError(f"{folder.name}: the ids do not match the manifest's hash (a shard was changed or "
                        "swapped)")
    if len(set(ids)) != len(ids):
        raise DataError(f"{folder.name}: ids listed more than once")
    if not np.isfinite(embeddings).all() or (scores is not None and not np.isfinite(scores).all()):
        raise DataError(f"{folder.name}: embeddings or scores hold NaN or inf")
    norms = np.linalg.norm(embeddings, axis=1)
    if np.abs(norms - 1).max() > UNIT_TOLERANCE:
        raise DataError(f"{folder.name}: embeddings must be unit vectors (row {int(np.abs(norms - 1).argmax())} "
                        f"has norm {norms[np.abs(norms - 1).argmax()]:.3f})")
    class_names = tuple(m["class_names"]) if m.get("class_names") else None
    label_array = None
    if class_names:
        index = {c: i for i, c in enumerate(class_names)}
        unknown = sorted({lbl for lbl in labels if lbl and lbl not in index})
        if unknown:
            raise DataError(f"{folder.name}: labels {unknown[:5]} are not in the manifest's classes")
        label_array = np.array([index[lbl] if lbl else -1 for lbl in labels], np.int64)
    has_paths = any(paths)
    first = next((p for p in paths if p), None)
    return EmbeddingStore(folder, m, ids, embeddings, scores, paths if has_paths else None, label_array,
                          class_names, readable=bool(first and Path(first).is_file()))


def _check_width(kind, width: int, what: str) -> None:
    import pyarrow as pa

    if not pa.types.is_fixed_size_list(kind) or kind.list_size != width or not pa.types.is_floating(kind.value_type):
        raise DataError(f"{what}: expected fixed-size lists of {width} floats, got {kind}")


def _fixed_list(column, width: int) -> np.ndarray:
    """A fixed-size-list column of a record batch as float32 [rows, width], without Python objects."""
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32, copy=False)
