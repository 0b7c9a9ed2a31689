"""Concept scores: how strongly each image shows each concept, from CLIP embeddings.

``x[n, j] = max(0, max_r cos(v[n, r], t[j]))`` over the image's regions ``r`` (InFiConD):
- ``global``: one region, the image embedding;
- ``patches``: every patch embedding;
- ``segments``: patch embeddings grouped by k-means into a few coherent regions, mean-pooled.
``t[j]`` is the normalized mean of concept ``j``'s prompt embeddings over the corpus templates.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from infi.corpus import Corpus
from infi.encoders import ClipEncoder, ImageEmbeddings
from infi.errors import InputError

REGION_MODES = ("global", "patches", "segments")


@dataclass
class ConceptBank:
    """Unit text embeddings [K, D] for the corpus's concepts."""

    names: tuple[str, ...]
    embeddings: np.ndarray


@dataclass
class ConceptMatrix:
    """Concept scores X [N, K] float32 with the concept names and the region mode that made them."""

    X: np.ndarray
    names: tuple[str, ...]
    mode: str

    def top_concepts(self, i: int, k: int = 10) -> list[tuple[str, float]]:
        order = np.argsort(-self.X[i])[:k]
        return [(self.names[j], float(self.X[i, j])) for j in order]

    def top_images(self, concept: str, k: int = 12) -> np.ndarray:
        j = self.index(concept)
        return np.argsort(-self.X[:, j], kind="stable")[:k]

    def uninformative(self, tolerance: float = 1e-5) -> list[str]:
        """Concepts whose score is the same (often zero) on every image: a student cannot use them,
        and with the demo encoder on other images they are the first sign it does not fit."""
        spread = self.X.std(axis=0) if len(self.X) else np.zeros(len(self.names))
        return [n for n, s in zip(self.names, spread) if s < tolerance]

    def without(self, drop: Sequence[str]) -> ConceptMatrix:
        """The matrix without the ``drop`` concepts."""
        keep = [j for j, n in enumerate(self.names) if n not in set(drop)]
        return ConceptMatrix(self.X[:, keep], tuple(self.names[j] for j in keep), self.mode)

    def index(self, concept: str) -> int:
        try:
            return self.names.index(concept)
        except ValueError:
            raise InputError(f"concept: {concept!r} is not in the concept matrix") from None


_BANKS: OrderedDict[tuple, tuple[weakref.ref, ConceptBank]] = OrderedDict()  # shared like the models
_BANKS_MAX = 8
_BANKS_LOCK = threading.Lock()


def build_bank(encoder: ClipEncoder, corpus: Corpus) -> ConceptBank:
    """Average each concept's prompt embeddings over the templates (prompt ensembling). Banks
    are kept per (model, concepts, templates) for the process, a few, least recent out first
    (the text tower ran again on every extraction: ~1 s for 200 concepts on B/32); a weak
    reference to the model makes sure a bank is never served for another model."""
    key = (id(encoder.model), corpus.concepts, corpus.templates)
    with _BANKS_LOCK:
        hit = _BANKS.get(key)
        if hit is not None and hit[0]() is encoder.model:
            _BANKS.move_to_end(key)
            return hit[1]
    bank = _compute_bank(encoder, corpus)
    with _BANKS_LOCK:
        _BANKS[key] = (weakref.ref(encoder.model), bank)
        while len(_BANKS) > _BANKS_MAX:
            _BANKS.popitem(last=False)
    return bank


def _compute_bank(encoder: ClipEncoder, corpus: Corpus) -> ConceptBank:
    emb = encoder.embed_texts(corpus.prompts())
    k = len(corpus)
    mean = emb.reshape(len(corpus.templates), k, -1).mean(axis=0)
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return ConceptBank(corpus.concepts, mean.astype(np.float32))


def segment_embeddings(patches: torch.Tensor, n_segments: int = 4, iters: int = 8) -> torch.Tensor:
    """Batched k-means over each image's patch embeddings: [N, P, D] -> unit segment means [N, S, D].

    Centres start at evenly spaced patches (deterministic); empty clusters keep their centre.
    """
    n, p, d = patches.shape
    s = min(n_segments, p)
    x = F.normalize(patches.float(), dim=-1)
    start = torch.linspace(0, p - 1, s).round().long()
    centres = x[:, start].clone()
    for _ in range(iters):
        assign = torch.einsum("npd,nsd->nps", x, centres).argmax(-1)  # cosine k-means
        onehot = F.one_hot(assign, s).float()  # [N, P, S]
        sums = torch.einsum("nps,npd->nsd", onehot, x)
        counts = onehot.sum(1).unsqueeze(-1)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    return F.normalize(centres, dim=-1)


def concept_scores(emb: ImageEmbeddings, bank: ConceptBank, mode: str = "global",
                   n_segments: int = 4, batch_size: int = 512) -> ConceptMatrix:
    """X [N, K] = max(0, max over regions of cos(region, concept))."""
    if mode not in REGION_MODES:
        raise InputError(f"mode: unknown region mode {mode!r}; choose from {list(REGION_MODES)}")
    T = torch.from_numpy(bank.embeddings)
    if mode == "global":
        X = torch.from_numpy(emb.global_) @ T.T
        return ConceptMatrix(np.maximum(X.numpy(), 0).astype(np.float32), bank.names, mode)
    if emb.patches is None:
        raise InputError(f"mode: {mode!r} needs patch embeddings; embed the images with patches")
    out = []
    for start in range(0, len(emb.patches), batch_size):
        regions = torch.from_numpy(np.asarray(emb.patches[start:start + batch_size], np.float32))
        if mode == "segments":
            regions = segment_embeddings(regions, n_segments)
        out.append((regions @ T.T).amax(dim=1))
    X = torch.cat(out) if out else torch.zeros(0, len(bank.names))
    return ConceptMatrix(np.maximum(X.numpy(), 0).astype(np.float32), bank.names, mode)


def patch_score_map(patches: np.ndarray, bank: ConceptBank, concept: str, grid: int) -> np.ndarray:
    """One image's per-patch scores for one concept, as a [grid, grid] map for an overlay."""
    j = list(bank.names).index(concept) if concept in bank.names else None
    if j is None:
        raise InputError(f"concept: {concept!r} is not in the concept bank")
    scores = np.asarray(patches, np.float32) @ bank.embeddings[j]
    return scores.reshape(grid, grid)


def class_concept_means(X: np.ndarray, assigned: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean concept score per class [C, K] (classes from labels or teacher predictions)."""
    out = np.zeros((n_classes, X.shape[1]), np.float32)
    for c in range(n_classes):
        mask = assigned == c
        if mask.any():
            out[c] = X[mask].mean(axis=0)
    return out
