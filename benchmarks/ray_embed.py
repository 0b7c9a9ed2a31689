"""Past one machine: `infi embed` on a local two-CPU Ray cluster against the in-process engine,
and steering a student from a 100,000-image store.

- ray_vs_local: images/s of `--engine ray` (decode tasks + one model worker on `ray.init(num_cpus=2)`)
  over `--engine local`, same photo-like JPEGs, same ViT-B/32-shaped CLIP (random weights cost
  what trained ones do), the median of paired rounds in one run, worker start-up included.
- max_abs_diff: the largest difference between the two stores' embeddings, and between either and
  the app's own path (`Session.embed` on the folder loaded as a dataset).
- store_100k_distill_s: a store of 100,000 ids (generated unit embeddings around 100 class centres,
  generated scores for K = 584 concepts), a generated predictions Parquet keyed by the ids: open
  the store, read the teacher, take the stored concept scores and distill (k = 20, defaults)
  through `Session`; in a fresh process, whose peak RSS is store_100k_rss_mb.
- store_100k_refit_s: one single-class edit (remove the class's strongest concept) through
  `Session.tune`, metrics before and after included.

    python benchmarks/ray_embed.py [--images 480] [--rounds 2] [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit, timed
from photo_scale import clip_folder, photos

from infi.bulk_embed import embed_to_store
from infi.corpus import builtin_corpus
from infi.data import from_folder
from infi.session import Session
from infi.store import StoreSpec, StoreWriter, open_store

K, C, D = 584, 100, 512


def engines(n_images: int, rounds: int) -> dict:
    import ray

    encoder = clip_folder(32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for name, blob in photos(n_images):
            (folder / name).write_bytes(blob)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            embed_to_store(folder, Path(tmp) / "warm", encoder, overwrite=True)  # the driver's model, once
            times: dict[str, list[float]] = {"local": [], "ray": []}
            for _ in range(rounds):
                for engine in ("local", "ray"):
                    _, seconds = timed(embed_to_store, folder, Path(tmp) / engine, encoder, engine=engine,
                                       overwrite=True)
                    times[engine].append(seconds)
                    print(f"{engine}: {n_images / seconds:.1f} images/s", file=sys.stderr, flush=True)
            plan = json.loads((Path(tmp) / "ray" / "manifest.json").read_text())["plan"]
        finally:
            ray.shutdown()
        a, b = open_store(Path(tmp) / "local"), open_store(Path(tmp) / "ray")
        session = Session()
        session.set_dataset(from_folder(folder))
        session.set_encoder(encoder)
        app = session.embed(patches=False).global_
        local_rate = n_images / float(np.median(times["local"]))
        ray_rate = n_images / float(np.median(times["ray"]))
        return {"images": n_images, "local_images_per_s": local_rate, "ray_images_per_s": ray_rate,
                "ray_vs_local": ray_rate / local_rate, "ray_plan": plan,
                "max_abs_diff": float(max(np.abs(a.embeddings - b.embeddings).max(),
                                          np.abs(a.embeddings - app).max()))}


def generated_store(folder: Path, rows: int, seed: int = 0) -> Path:
    """A store of ``rows`` generated ids whose classes are learnable, and a predictions Parquet."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(C, D)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    directions = rng.normal(size=(K, D)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    corpus = builtin_corpus().with_concepts(builtin_corpus().concepts[:K])
    writer = StoreWriter(folder / "store", StoreSpec("generated", D, 7, corpus, engine="generated"))
    labels = rng.integers(0, C, rows)
    logits = np.empty((rows, C), np.float32)
    names = [f"class_{c:03d}" for c in range(C)]
    for start in range(0, rows, 10_000):
        y = labels[start:start + 10_000]
        E = centres[y] + 0.045 * rng.normal(size=(len(y), D)).astype(np.float32)
        E /= np.linalg.norm(E, axis=1, keepdims=True)
        ids = [f"img_{i:07d}" for i in range(start, start + len(y))]
        writer.write(ids, E, np.maximum(0, E @ directions.T), labels=[names[c] for c in y])
        logits[start:start + len(y)] = 12 * E @ centres.T
    writer.close()
    P = np.exp(logits - logits.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    table = pd.DataFrame(P, columns=names)
    table.insert(0, "id", [f"img_{i:07d}" for i in range(rows)])
    table.to_parquet(folder / "teacher.parquet")
    return folder


def steer(folder: Path) -> dict:
    """In this (fresh) process: the store to a distilled student, then one single-class edit."""
    from infi.student import effective_concepts
    from infi.teachers import load_predictions
    from infi.tuning import TuningAction

    t0 = time.perf_counter()
    store = open_store(folder / "store")
    t_open = time.perf_counter() - t0
    session = Session(seed=0)
    session.open_store(store)
    names = store.class_names
    session.run_teacher(load_predictions(folder / "teacher.parquet", "teacher.parquet", expected_classes=C))
    session.extract_concepts(builtin_corpus().with_concepts(builtin_corpus().concepts[:K]), "global")
    t_ready = time.perf_counter() - t0
    metrics = session.distill()
    distill_s = time.perf_counter() - t0
    weights = session.student.weights_[:, 0]
    concept = session.concepts.names[int(np.abs(weights).argmax())]
    _, refit_s = timed(session.tune, [TuningAction(concept, "remove", names[0])])
    return {"store_100k_open_s": t_open, "store_100k_ready_s": t_ready, "store_100k_distill_s": distill_s,
            "store_100k_refit_s": refit_s, "store_100k_fidelity": metrics["fidelity"],
            "store_100k_accuracy": metrics["accuracy"],
            "store_100k_nec": effective_concepts(session.student.weights_),
            "store_100k_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--steer", help=argparse.SUPPRESS)  # the fresh process of the store figures
    args = parser.parse_args()
    if args.steer:
        print(json.dumps(steer(Path(args.steer))))
        return
    figures = engines(args.images, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        generated_store(Path(tmp), args.rows)
        out = subprocess.run([sys.executable, __file__, "--steer", tmp], capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr)
        figures |= json.loads(out.stdout.strip().splitlines()[-1])
    figures["rows"] = args.rows
    for key, value in figures.items():
        print(f"{key}: {value}", file=sys.stderr)
    emit(figures)


if __name__ == "__main__":
    main()
