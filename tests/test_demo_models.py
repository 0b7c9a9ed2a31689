"""The bundled demo encoder and teacher: offline loading and their figures on a small sample."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoProcessor, CLIPModel, CLIPProcessor

from infi.demo.encoder import DEMO_ENCODER_DIR, load_demo_encoder
from infi.demo.evaluate import patch_localization, word_aurocs, zero_shot_accuracy
from infi.demo.teacher import DEMO_TEACHER_DIR, load_demo_teacher
from infi.demo.world import generate_world
from infi.encoders import project_tokens
from infi.metrics import accuracy

TEST_SEED = 31337  # never used in training (training seeds are >= 1000 and listed in infi/demo)


@pytest.fixture(scope="module")
def sample():
    return generate_world(400, split="shifted", seed=TEST_SEED)


@pytest.fixture(scope="module")
def sample_embeddings(demo_encoder, sample):
    return demo_encoder.embed_images(sample.images)


def test_encoder_loads_offline_like_any_clip_folder():
    model = CLIPModel.from_pretrained(DEMO_ENCODER_DIR, local_files_only=True)
    processor = CLIPProcessor.from_pretrained(DEMO_ENCODER_DIR, local_files_only=True)
    assert isinstance(AutoModel.from_pretrained(DEMO_ENCODER_DIR, local_files_only=True), CLIPModel)
    assert AutoProcessor.from_pretrained(DEMO_ENCODER_DIR, local_files_only=True) is not None
    assert (DEMO_ENCODER_DIR / "model.safetensors").stat().st_size < 20 * 2**20
    assert not list(DEMO_ENCODER_DIR.glob("*.bin"))
    tok = processor.tokenizer
    ids = tok(["a small red striped triangle on grass"])["input_ids"][0]
    assert ids[-1] == model.config.text_config.eos_token_id
    assert tok.decode(ids, skip_special_tokens=True).strip() == "a small red striped triangle on grass"


def test_patch_path_cls_token_equals_image_features(sample):
    model, processor = load_demo_encoder()
    pixels = processor(images=[sample.image(i) for i in range(4)], return_tensors="pt")["pixel_values"]
    assert pixels.shape == (4, 3, 64, 64)
    with torch.inference_mode():
        cls, patches = project_tokens(model, pixels)
        features = model.get_image_features(pixel_values=pixels).pooler_output
    assert patches.shape == (4, 64, model.config.projection_dim)
    assert torch.allclose(cls, features, atol=1e-5)


def test_encoder_zero_shot_accuracy(demo_encoder, sample, sample_embeddings):
    acc = zero_shot_accuracy(demo_encoder, sample, sample_embeddings)
    for attribute in ("shape", "colour", "background"):
        assert acc[attribute] >= 0.90, acc
    for attribute in ("fill", "size"):
        assert acc[attribute] >= 0.80, acc


def test_attribute_words_separate_images(demo_encoder, sample, sample_embeddings):
    aurocs = word_aurocs(demo_encoder, sample, sample_embeddings)
    assert len(aurocs) == 18
    assert min(aurocs.values()) >= 0.9, aurocs


def test_patch_tokens_localize(demo_encoder, sample, sample_embeddings):
    local = patch_localization(demo_encoder, sample, sample_embeddings)
    assert local["shape"] >= 0.7 and local["colour"] >= 0.7, local


def test_teacher_learned_shapes_and_the_shortcut(demo_teacher):
    biased = generate_world(500, split="biased", p=0.9, seed=TEST_SEED)
    shifted = generate_world(500, split="shifted", seed=TEST_SEED + 1)
    acc_biased = accuracy(demo_teacher.predict_proba(biased.images), biased.labels)
    acc_shifted = accuracy(demo_teacher.predict_proba(shifted.images), shifted.labels)
    assert acc_biased >= 0.95
    assert acc_biased - acc_shifted >= 0.10
    assert acc_shifted > 0.3  # it did learn some shape, not only the background


def test_teacher_probabilities_are_a_distribution(demo_teacher):
    probs = demo_teacher.predict_proba(generate_world(8, seed=1).images)
    assert probs.shape == (8, 6)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert demo_teacher.class_names == ("circle", "square", "triangle", "star", "cross", "hexagon")


def test_teacher_rejects_wrong_image_shapes(demo_teacher):
    with pytest.raises(ValueError, match="images"):
        demo_teacher.predict_proba(np.zeros((2, 32, 32, 3), np.uint8))


def test_teacher_is_safetensors_and_json_only():
    files = sorted(p.name for p in DEMO_TEACHER_DIR.iterdir())
    assert files == ["config.json", "model.safetensors"]


def test_missing_model_folders_say_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_teacher"):
        load_demo_teacher(tmp_path)
    with pytest.raises(FileNotFoundError, match="train_encoder"):
        load_demo_encoder(tmp_path)
