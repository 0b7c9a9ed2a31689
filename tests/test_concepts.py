"""Concept scores in the three region modes, bank averaging and per-patch maps."""

import numpy as np
import pytest
import torch

from infi.concepts import (
    ConceptBank,
    build_bank,
    class_concept_means,
    concept_scores,
    patch_score_map,
    segment_embeddings,
)
from infi.corpus import Corpus
from infi.encoders import ImageEmbeddings


def unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    patches = unit(rng.normal(size=(3, 4, 8))).astype(np.float32)
    g = unit(rng.normal(size=(3, 8))).astype(np.float32)
    bank = ConceptBank(("a", "b"), unit(rng.normal(size=(2, 8))).astype(np.float32))
    return ImageEmbeddings(g, patches, 2), bank


def test_global_scores_are_clipped_cosines(toy):
    emb, bank = toy
    X = concept_scores(emb, bank, "global").X
    assert np.allclose(X, np.maximum(emb.global_ @ bank.embeddings.T, 0), atol=1e-6)
    assert X.dtype == np.float32 and (X >= 0).all()


def test_patch_scores_take_the_best_region(toy):
    emb, bank = toy
    X = concept_scores(emb, bank, "patches").X
    manual = np.maximum(np.einsum("npd,kd->npk", emb.patches, bank.embeddings).max(1), 0)
    assert np.allclose(X, manual, atol=1e-6)


def test_segments_group_similar_patches():
    a, b = np.eye(4)[0], np.eye(4)[1]
    patches = torch.tensor(np.stack([a, a * 0.9 + b * 0.1, b, b * 0.95 + a * 0.05]), dtype=torch.float32)
    seg = segment_embeddings(patches[None], n_segments=2)
    assert seg.shape == (1, 2, 4)
    # Each segment lines up with one of the two directions.
    sims = seg[0] @ torch.tensor(np.stack([a, b]), dtype=torch.float32).T
    assert sorted(sims.argmax(1).tolist()) == [0, 1] and sims.max(1).values.min() > 0.95


def test_segment_mode_lies_between_global_and_patches(toy):
    emb, bank = toy
    seg = concept_scores(emb, bank, "segments", n_segments=4).X  # 4 segments of 4 patches = patches
    assert np.allclose(seg, concept_scores(emb, bank, "patches").X, atol=1e-5)


def test_unknown_mode_and_missing_patches_are_errors(toy):
    emb, bank = toy
    with pytest.raises(ValueError, match="mode"):
        concept_scores(emb, bank, "pixels")
    with pytest.raises(ValueError, match="patch embeddings"):
        concept_scores(ImageEmbeddings(emb.global_, None, 2), bank, "patches")


def test_bank_averages_templates(demo_encoder):
    corpus = Corpus(("grass", "sky"), ("bg", "bg"), ("{}", "a photo of {}"))
    bank = build_bank(demo_encoder, corpus)
    raw = demo_encoder.embed_texts(corpus.prompts()).reshape(2, 2, -1).mean(0)
    assert np.allclose(bank.embeddings, unit(raw), atol=1e-5)


def test_patch_map_and_class_means(toy):
    emb, bank = toy
    m = patch_score_map(emb.patches[1], bank, "b", grid=2)
    assert m.shape == (2, 2) and np.isclose(m.max(), (emb.patches[1] @ bank.embeddings[1]).max())
    with pytest.raises(ValueError, match="concept"):
        patch_score_map(emb.patches[1], bank, "zzz", grid=2)
    means = class_concept_means(np.array([[1.0, 0], [3, 0], [0, 5]]), np.array([0, 0, 1]), 3)
    assert means.tolist() == [[2, 0], [0, 5], [0, 0]]


def test_concept_banks_are_computed_once_per_model_and_corpus():
    from infi.concepts import build_bank
    from infi.demo.plugin import demo_corpus
    from infi.encoders import shared_encoder

    encoder = shared_encoder("demo")
    calls = []
    original = encoder.embed_texts
    encoder.embed_texts = lambda texts, **kw: calls.append(len(texts)) or original(texts, **kw)
    try:
        corpus = demo_corpus().with_concepts(["grass", "sky", "a concept seen once"])
        first = build_bank(encoder, corpus)
        assert build_bank(encoder, corpus) is first and len(calls) == 1
        build_bank(encoder, corpus.with_concepts(["grass"]))
        assert len(calls) == 2
    finally:
        del encoder.embed_texts
