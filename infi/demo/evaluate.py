"""Figures of merit for the Shapes World models, shared by the tests and ``benchmarks/demo_world.py``.

All of them compare a model's behaviour with the world's known annotations: zero-shot accuracy per
attribute, how well each attribute word separates images (AUROC of its concept score), whether a
word's best patch lies on the object, and the teacher's accuracy with and without the shortcut.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from infi.demo.encoder import ATTRIBUTE_PROMPTS
from infi.demo.world import ATTRIBUTE_VALUES, ATTRIBUTES, World
from infi.encoders import ClipEncoder, ImageEmbeddings

# A patch counts as "on the object" when the object covers at least this share of it.
ON_OBJECT_COVERAGE = 0.25
CONCEPT_TEMPLATE = "{}"  # an attribute word used as a concept, as it would stand in a corpus


def attribute_codes(world: World, attribute: str) -> np.ndarray:
    values = ATTRIBUTE_VALUES[attribute]
    return world.attributes[attribute].map({v: i for i, v in enumerate(values)}).to_numpy()


def zero_shot_accuracy(encoder: ClipEncoder, world: World, emb: ImageEmbeddings) -> dict[str, float]:
    """Accuracy per attribute, one prompt per value (``ATTRIBUTE_PROMPTS``)."""
    report = {}
    for a in ATTRIBUTES:
        prompts = [ATTRIBUTE_PROMPTS[a].format(v) for v in ATTRIBUTE_VALUES[a]]
        pred = (emb.global_ @ encoder.embed_texts(prompts).T).argmax(axis=1)
        report[a] = float((pred == attribute_codes(world, a)).mean())
    return report


def word_aurocs(encoder: ClipEncoder, world: World, emb: ImageEmbeddings,
                attributes: tuple[str, ...] = ("shape", "colour", "background")) -> dict[str, float]:
    """AUROC of each word's concept score ``max(0, cos(image, word))`` for has-it vs lacks-it."""
    out = {}
    for a in attributes:
        words = list(ATTRIBUTE_VALUES[a])
        scores = np.maximum(0.0, emb.global_ @ encoder.embed_texts(
            [CONCEPT_TEMPLATE.format(w) for w in words]).T)
        truth = world.attributes[a].to_numpy()
        for j, w in enumerate(words):
            has = truth == w
            if has.all() or not has.any():
                continue
            out[w] = float(roc_auc_score(has, scores[:, j]))
    return out


def patch_coverage(masks: np.ndarray, grid: int) -> np.ndarray:
    """Share of each patch covered by the object mask: [N, grid*grid]."""
    n, h, w = masks.shape
    ph, pw = h // grid, w // grid
    m = masks[:, : ph * grid, : pw * grid].reshape(n, grid, ph, grid, pw).mean(axis=(2, 4))
    return m.reshape(n, -1)


def patch_localization(encoder: ClipEncoder, world: World, emb: ImageEmbeddings,
                       attributes: tuple[str, ...] = ("shape", "colour")) -> dict[str, float]:
    """Share of images whose best-scoring patch for their own shape / colour word is on the object."""
    if emb.patches is None:
        raise ValueError("emb: patch embeddings are needed for localization")
    cover = patch_coverage(world.masks, emb.grid)
    rows = np.arange(len(world))
    out = {}
    for a in attributes:
        words = encoder.embed_texts([CONCEPT_TEMPLATE.format(v) for v in ATTRIBUTE_VALUES[a]])
        own = words[attribute_codes(world, a)]  # [N, D]
        scores = np.einsum("npd,nd->np", emb.patches, own)
        best = scores.argmax(axis=1)
        out[a] = float((cover[rows, best] >= ON_OBJECT_COVERAGE).mean())
    return out

