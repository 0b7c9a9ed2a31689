"""Embed many images into a store (``infi embed``): list the inputs, decode and crop them on the
CPU, run the model on the crops, write Parquet shards.

The three stages are plain functions and one callable class, so the in-process engine
(``embed_local``) and the Ray engine (``infi.ray_embed``) run the very same code: decoding and
cropping with ``ClipEncoder.prepare``'s ``prepare_images``, the model with
``ClipEncoder.embed_images(prepared=True)``. Same images, same encoder: same numbers.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infi.concepts import build_bank, concept_scores
from infi.corpus import Corpus
from infi.data import IMAGE_SUFFIXES, decode_image, over_file_limit
from infi.encoders import prepare_images, shared_encoder
from infi.errors import DataError, InputError, LimitError, MissingFileError
from infi.limits import Budget, hint
from infi.store import StoreSpec, StoreWriter

Progress = Callable[[int, int], None]
DECODE_BATCH = 64  # images per decode task
CPU_BATCH = 32  # images per model call on a CPU (encoders.BATCH: 64 was slower on 2 cores)
GPU_BATCH = 256  # on a GPU: an H200 ran ViT-B/32 at 16,200 images/s with 256, 17,000 with 512


@dataclass(frozen=True)
class ImageRef:
    """One input image: its id in the store, where its file is, and its class if known."""

    id: str
    path: str
    label: str | None = None


def list_images(source: str | Path, budget: Budget | None = None) -> list[ImageRef]:
    """The images a source names: a folder (ImageFolder layout gives labels; ids are paths inside
    it, as the Data page gives them), a ``.txt`` list of paths (one per line), or a ``.csv`` /
    ``.parquet`` table with a ``path`` column and optional ``id`` and ``label`` columns. Relative
    paths in a list are relative to the list's folder."""
    budget = budget or Budget.current()
    source = Path(source).expanduser().resolve()  # stored paths are absolute: the app may run elsewhere
    if source.is_dir():
        return _folder_refs(source, budget)
    if not source.is_file():
        raise MissingFileError(f"--images: no folder or file at {source}")
    suffix = source.suffix.lower()
    budget.check("max_prediction_bytes", source.stat().st_size, f"{source.name}: its size")
    if suffix in (".txt", ".lst"):
        lines = [ln.strip() for ln in source.read_text(encoding="utf-8-sig").splitlines()]
        table = {"path": [ln for ln in lines if ln and not ln.startswith("#")]}
    elif suffix in (".csv", ".parquet"):
        import pandas as pd

        try:
            frame = pd.read_csv(source, dtype=str) if suffix == ".csv" else pd.read_parquet(source)
        except Exception as err:  # noqa: BLE001 - pandas and pyarrow raise many types
            raise DataError(f"{source.name}: could not be read ({type(err).__name__}: {err})") from None
        if "path" not in frame.columns:
            raise DataError(f"{source.name}: needs a 'path' column (and optionally 'id' and 'label'); found "
                            f"{list(frame.columns)[:10]}")
        table = {c: [None if v is None or v != v else str(v) for v in frame[c].tolist()]
                 for c in ("path", "id", "label") if c in frame.columns}
    else:
        raise InputError(f"--images: give a folder, a .txt list of paths, or a .csv / .parquet with a 'path' "
                         f"column; got {source.name}")
    budget.check("max_store_rows", len(table["path"]), f"{source.name}: its rows")
    root = source.parent
    refs = []
    for k, raw in enumerate(table["path"]):
        if not raw:
            raise DataError(f"{source.name}: row {k + 1} has no path")
        path = Path(raw).expanduser()
        full = (path if path.is_absolute() else root / path).resolve()
        image_id = (table.get("id") or [None] * len(table["path"]))[k] or raw
        label = (table.get("label") or [None] * len(table["path"]))[k]
        refs.append(ImageRef(image_id, str(full), label or None))
    dupes = _duplicates([r.id for r in refs])
    if dupes:
        raise DataError(f"{source.name}: ids listed more than once: {dupes[:5]}")
    return refs


def _folder_refs(root: Path, budget: Budget) -> list[ImageRef]:
    files = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and not p.is_symlink() and not any(part.startswith(".") for part in rel.parts) \
                and p.suffix.lower() in IMAGE_SUFFIXES:
            files.append(rel)
            if len(files) > budget.max_store_rows:
                raise LimitError(f"{root}: more than {budget.max_store_rows:,} images ({hint('max_store_rows')})")
    files.sort()
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    layout = all(len(r.parts) >= 2 for r in files)  # ImageFolder: every image in a class folder
    return [ImageRef(r.as_posix(), str(root / r), r.parts[0] if layout else None) for r in files]


def _duplicates(ids: Sequence[str]) -> list[str]:
    return sorted(k for k, v in Counter(ids).items() if v > 1)


def decode_batch(paths: Sequence[str], ids: Sequence[str], crop: tuple[int, int, int],
                 budget: Budget | None = None) -> tuple[np.ndarray, list[str]]:
    """The CPU stage: each file read (size checked first), decoded within the budget and cropped
    for the encoder. Returns uint8 crops [B, H, W, 3] (zeros where a file failed) and a reason per
    row ('' when it decoded)."""
    budget = budget or Budget.current()
    short, crop_h, crop_w = crop
    out = np.zeros((len(paths), crop_h, crop_w, 3), np.uint8)
    reasons = [""] * len(paths)
    for k, (path, image_id) in enumerate(zip(paths, ids)):
        try:
            p = Path(path)
            size = p.stat().st_size
            if size > budget.max_file_bytes:
                reasons[k] = over_file_limit(size, budget)
                continue
            image = decode_image(p.read_bytes(), image_id, budget)
            out[k] = prepare_images([image], short, crop_h, crop_w)[0]
        except InputError as err:
            reasons[k] = str(err).removeprefix(f"{image_id}: ")
        except OSError as err:
            reasons[k] = f"cannot be read ({err.strerror or err})"
    return out, reasons


class BatchEmbedder:
    """The model stage: uint8 crops -> unit global embeddings, and concept scores when a corpus
    is given (region modes score each image's patches here, so patches never leave the worker)."""

    def __init__(self, encoder_id: str, corpus: dict | None = None, mode: str = "global",
                 dense: str = "vanilla", resolution: int | None = None, threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.encoder = shared_encoder(encoder_id)
        self.corpus = Corpus.from_dict(corpus) if corpus else None
        self.bank = build_bank(self.encoder, self.corpus) if self.corpus is not None else None
        self.mode, self.dense, self.resolution = mode, dense, resolution

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        regions = self.bank is not None and self.mode != "global"
        emb = self.encoder.embed_images(crops, batch_size=max(len(crops), 1), patches=regions,
                                        dense=self.dense if regions else "vanilla",
                                        resolution=self.resolution if regions else None, prepared=True)
        scores = concept_scores(emb, self.bank, self.mode).X if self.bank is not None else None
        return emb.global_, scores


def store_spec(encoder_id: str, corpus: Corpus | None, mode: str, dense: str | None,
               resolution: int | None, engine: str) -> tuple[StoreSpec, tuple[int, int, int]]:
    """The store's description and the crop every decode worker makes, read from the encoder."""
    from infi.dense import default_method

    if mode != "global" and corpus is None:
        raise InputError("--mode: region modes are scored while embedding (patches are not stored); give "
                         "--corpus or --corpus-file with --scores")
    encoder = shared_encoder(encoder_id)
    regions = corpus is not None and mode != "global"
    dense = (dense or default_method(encoder_id)) if regions else "vanilla"
    grid = (resolution or encoder.image_size) // encoder.patch if regions else encoder.grid
    spec = StoreSpec(encoder.name, encoder.dim, grid, corpus, mode, dense, resolution if regions else None, engine)
    return spec, encoder.crop_spec(resolution if regions else None)


def batches(refs: Sequence[ImageRef], size: int) -> Iterator[Sequence[ImageRef]]:
    for start in range(0, len(refs), size):
        yield refs[start:start + size]


def embed_local(refs: Sequence[ImageRef], writer: StoreWriter, crop: tuple[int, int, int],
                embedder: BatchEmbedder, batch_size: int = 32, progress: Progress | None = None) -> None:
    """The in-process engine: decode, embed and write one batch at a time in this process."""
    done = 0
    for part in batches(refs, batch_size):
        crops, reasons = decode_batch([r.path for r in part], [r.id for r in part], crop)
        write_rows(writer, part, crops, reasons, embedder)
        done += len(part)
        if progress:
            progress(done, len(refs))


def write_rows(writer: StoreWriter, refs: Sequence[ImageRef], crops: np.ndarray, reasons: Sequence[str],
               embedder: BatchEmbedder) -> None:
    """Embed the rows that decoded and write them; name the ones that did not."""
    keep = [k for k, r in enumerate(reasons) if not r]
    for k, reason in enumerate(reasons):
        if reason:
            writer.skip(refs[k].id, reason)
    if not keep:
        return
    emb, scores = embedder(crops[keep])
    writer.write([refs[k].id for k in keep], emb, scores, [refs[k].path for k in keep],
                 [refs[k].label for k in keep])


def rate_printer(label: str, stream=sys.stderr) -> Progress:
    """Console progress with the rate so far: 'embed: 1,200/5,000 images (38.1/s)'."""
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - start, 1e-9)
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done:,}/{total:,} images ({rate:,.1f}/s)", end=end, file=stream, flush=True)
    return report


ENGINES = ("local", "ray")


def embed_to_store(images: str | Path | Sequence[ImageRef], out: str | Path, encoder_id: str,
                   corpus: Corpus | None = None, mode: str = "global", dense: str | None = None,
                   resolution: int | None = None, engine: str = "local", batch_size: int | None = None,
                   overwrite: bool = False, progress: Progress | None = None, **ray_options) -> dict:
    """Embed the images a source names (``list_images``) into a store at ``out``; returns the
    manifest (with the engine's plan and the images per second). ``batch_size`` defaults to
    what suits the model's device (``CPU_BATCH`` or ``GPU_BATCH``). ``engine='ray'`` takes
    ``ray_options`` (``model_workers``, ``gpus_per_worker``, ``model_threads``, ``address``,
    ``num_cpus``; see ``infi.ray_embed.embed_ray``)."""
    if engine not in ENGINES:
        raise InputError(f"--engine: choose from {list(ENGINES)}, got {engine!r}")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size: must be at least 1, got {batch_size}")
    refs = list_images(images) if isinstance(images, (str, Path)) else list(images)
    spec, crop = store_spec(encoder_id, corpus, mode, dense, resolution, engine)
    embedder = {"encoder_id": encoder_id, "corpus": corpus.to_dict() if corpus is not None else None,
                "mode": mode, "dense": spec.dense, "resolution": spec.resolution}
    writer = StoreWriter(out, spec, overwrite=overwrite)
    start = time.perf_counter()
    if engine == "ray":
        from infi.ray_embed import embed_ray

        model = shared_encoder(encoder_id).model
        weights = sum(t.numel() * t.element_size() for t in model.parameters())
        ray_options.setdefault("worker_memory", 2 * weights + 512 * 1024**2)  # the model, activations, torch
        plan = embed_ray(refs, writer, crop, embedder, batch_size=batch_size, progress=progress, **ray_options)
    else:
        if ray_options:
            raise InputError(f"{sorted(ray_options)}: options of --engine ray only")
        embedding = BatchEmbedder(**embedder)
        batch_size = batch_size or (GPU_BATCH if embedding.encoder.device.type == "cuda" else CPU_BATCH)
        embed_local(refs, writer, crop, embedding, batch_size, progress)
        plan = {"engine": "local", "batch_size": batch_size}
    seconds = time.perf_counter() - start
    return writer.close({"plan": plan, "seconds": round(seconds, 3),
                         "images_per_second": round(len(refs) / max(seconds, 1e-9), 2)})
