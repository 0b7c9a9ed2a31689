"""The Ray engine of ``infi embed``: decode workers feed model workers, the driver writes shards.

Ray Data streams the inputs through two stages: CPU tasks read, decode and crop a batch of files
(``bulk_embed.decode_batch``), and a pool of actors, each holding the encoder once, turns crops
into embeddings and scores (``bulk_embed.BatchEmbedder``); GPUs go to the actors when the cluster
has them. Only embeddings come back to the driver, which writes them with the same
``StoreWriter`` as the in-process engine. This module is the only one that imports Ray, and only
``infi embed --engine ray`` imports this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from infi.bulk_embed import CPU_BATCH, DECODE_BATCH, GPU_BATCH, BatchEmbedder, ImageRef, Progress, decode_batch
from infi.errors import InputError
from infi.store import StoreWriter

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'infi[scale]' (or -r requirements-scale.txt)"


def _decode(batch: dict, crop: tuple[int, int, int]) -> dict:
    crops, reasons = decode_batch([str(p) for p in batch["path"]], [str(i) for i in batch["id"]], crop)
    return {"id": batch["id"], "path": batch["path"], "label": batch["label"], "crops": crops,
            "reason": np.array(reasons, dtype=object)}


class _ModelWorker:
    """One actor: the encoder loaded once, every batch of crops through it."""

    def __init__(self, **embedder_kwargs):
        self.embed = BatchEmbedder(**embedder_kwargs)

    def __call__(self, batch: dict) -> dict:
        ok = np.array([not r for r in batch["reason"]], bool)
        dim = self.embed.encoder.dim
        emb = np.zeros((len(ok), dim), np.float32)
        out = {"id": batch["id"], "path": batch["path"], "label": batch["label"], "reason": batch["reason"]}
        scores = None
        if ok.any():
            g, s = self.embed(batch["crops"][ok])
            emb[ok] = g
            if s is not None:
                scores = np.zeros((len(ok), s.shape[1]), np.float32)
                scores[ok] = s
        elif self.embed.bank is not None:
            scores = np.zeros((len(ok), len(self.embed.bank.names)), np.float32)
        out["embedding"] = emb
        if scores is not None:
            out["scores"] = scores
        return out


def cluster_resources(address: str | None = None, num_cpus: int | None = None) -> tuple[dict, bool]:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local cluster of ``num_cpus``;
    returns its resources and whether this call started Ray (and so should stop it)."""
    try:
        import ray
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs = {"address": address} if address else {"num_cpus": num_cpus}
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, **kwargs)
        started = True
    return ray.cluster_resources(), started


def embed_ray(refs: Sequence[ImageRef], writer: StoreWriter, crop: tuple[int, int, int], embedder: dict,
              batch_size: int | None = None, model_workers: int | None = None, gpus_per_worker: float | None = None,
              model_threads: int | None = None, decode_batch_size: int = DECODE_BATCH,
              progress: Progress | None = None, address: str | None = None,
              num_cpus: int | None = None, worker_memory: int | None = None) -> dict:
    """Embed ``refs`` on a Ray cluster into ``writer``; ``embedder`` holds ``BatchEmbedder``'s
    arguments. Defaults: one model worker per GPU (a GPU each), else one per four CPUs (at least
    one), each with the CPUs left over per worker as torch threads. ``worker_memory`` (bytes) is
    what a model worker reserves for its model (Ray schedules no more workers on a node than fit);
    it also keeps Ray from fusing decoding into the model workers. Returns the plan used."""
    try:
        import pyarrow as pa
        import ray
        import ray.data
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    resources, started = cluster_resources(address, num_cpus)
    try:
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if gpus else 0.0
        if model_workers is None:
            model_workers = max(1, int(gpus / gpus_per_worker)) if gpus_per_worker else max(1, cpus // 4)
        if model_threads is None:
            # CPU model workers share the machine with the decode tasks; on 2 CPUs that is one
            # decode task and one worker using both cores while the decoder waits on files.
            model_threads = 1 if gpus_per_worker else max(1, cpus // model_workers)
        batch_size = batch_size or (GPU_BATCH if gpus_per_worker else CPU_BATCH)
        plan = {"engine": "ray", "cluster_cpus": cpus, "cluster_gpus": gpus, "model_workers": model_workers,
                "gpus_per_worker": gpus_per_worker, "model_threads": model_threads, "batch_size": batch_size,
                "decode_batch_size": decode_batch_size}
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # the driver prints its own progress line
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the store lists images in input order
        context.enable_progress_bars = False  # the driver prints one progress line instead
        table = pa.table({"id": [r.id for r in refs], "path": [r.path for r in refs],
                          "label": [r.label for r in refs]})
        ds = ray.data.from_arrow(table)
        ds = ds.map_batches(_decode, fn_kwargs={"crop": crop}, batch_size=decode_batch_size,
                            batch_format="numpy", num_cpus=1)
        ds = ds.map_batches(_ModelWorker, fn_constructor_kwargs={**embedder, "threads": model_threads},
                            compute=ray.data.ActorPoolStrategy(size=model_workers),
                            num_gpus=gpus_per_worker or None, num_cpus=0 if gpus_per_worker else 1,
                            memory=worker_memory or 512 * 1024**2, batch_size=batch_size,
                            batch_format="numpy")
        done = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            reasons = batch["reason"]
            keep = np.flatnonzero([not r for r in reasons])
            for k in np.flatnonzero([bool(r) for r in reasons]):
                writer.skip(str(batch["id"][k]), str(reasons[k]))
            if len(keep):
                writer.write([str(i) for i in batch["id"][keep]], batch["embedding"][keep],
                             batch["scores"][keep] if "scores" in batch else None,
                             [str(p) for p in batch["path"][keep]],
                             [None if lbl is None else str(lbl) for lbl in batch["label"][keep]])
            done += len(reasons)
            if progress:
                progress(done, len(refs))
        return plan
    finally:
        if started:
            ray.shutdown()
