"""ClipEncoder on a tiny CLIP built from CLIPConfig: same code path as a hub checkpoint."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from infi.demo.encoder import train_tokenizer
from infi.encoders import ClipEncoder


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_clip")
    tok = train_tokenizer(["a photo of a cat", "a photo of a dog"] * 10, merges=30)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32,
                         eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                         pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=tok)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_clip_dir):
    return ClipEncoder.load(str(tiny_clip_dir))


def random_images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def smooth_photo(h, w, seed=0):
    """A photo-like image: smooth gradients and blurred blobs (what real photos mostly are)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * (c + 1) / w + y / h * rng.uniform(0.3, 1)) % 1 for c in range(3)], -1) * 255
    return Image.fromarray(base.astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))


def grey_levels(tiny, ours, theirs):
    ip = tiny.processor.image_processor
    return ((ours - theirs) * torch.tensor(ip.image_std).view(1, 3, 1, 1) / ip.rescale_factor).abs()


def test_preprocessing_matches_the_clip_processor(tiny):
    # torch's antialiased uint8 bicubic (what the torchvision-backed processor runs) against
    # the Pillow-backed processor: within one grey level on photo-like images ...
    photos = [smooth_photo(375, 500), smooth_photo(120, 50, seed=1), smooth_photo(20, 20, seed=2)]
    theirs = tiny.processor(images=photos, return_tensors="pt")["pixel_values"]
    assert grey_levels(tiny, tiny.pixel_values(photos), theirs).max() <= 1 + 1e-3
    # ... and on average within half a level on pure noise, its worst case; a crop-sized image is exact.
    noise = random_images([(50, 70), (32, 32), (90, 33), (20, 20)])
    ours, theirs = tiny.pixel_values(noise), tiny.processor(images=noise, return_tensors="pt")["pixel_values"]
    assert grey_levels(tiny, ours, theirs).mean() < 0.5
    assert torch.allclose(ours[1], theirs[1], atol=1e-5)


def test_image_patch_and_text_embeddings(tiny):
    images = random_images([(40, 40)] * 5)
    calls = []
    emb = tiny.embed_images(images, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert emb.global_.shape == (5, 16) and emb.patches.shape == (5, 16, 16) and emb.grid == 4
    assert np.allclose(np.linalg.norm(emb.global_, axis=1), 1, atol=1e-5)
    with torch.inference_mode():
        ref = tiny.model.get_image_features(pixel_values=tiny.pixel_values(images)).pooler_output
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    assert np.allclose(emb.global_, ref, atol=1e-5)
    texts = tiny.embed_texts(["a cat", "a photo of a dog"])
    assert texts.shape == (2, 16) and np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)


def test_uint8_arrays_and_pil_images_embed_alike(tiny):
    images = random_images([(32, 32)] * 3)
    arrays = np.stack([np.asarray(i) for i in images])
    assert np.allclose(tiny.embed_images(arrays).global_, tiny.embed_images(images).global_, atol=1e-6)


def test_unreachable_hub_id_names_the_offline_alternatives():
    with pytest.raises(OSError, match="demo encoder"):
        ClipEncoder.load("no-such-org/no-such-clip")


@pytest.mark.parametrize("ref", ["/no/such/clip", "./clip-checkpoint", "~/models/clip", "a/b/c"])
def test_missing_local_folder_is_named_as_a_folder_not_a_hub_id(ref):
    with pytest.raises(FileNotFoundError, match="no folder") as err:
        ClipEncoder.load(ref)
    assert ref in str(err.value) and "Repo id" not in str(err.value)


def test_existing_folder_without_a_checkpoint_says_what_is_missing(tmp_path):
    with pytest.raises(OSError, match="the folder has no config.json") as err:
        ClipEncoder.load(str(tmp_path))
    assert ".." not in str(err.value).replace(str(tmp_path), "")


def test_device_and_dtype_default_to_cpu_float32(tiny):
    assert tiny.device.type == "cpu" and tiny.dtype == torch.float32


def test_the_shared_encoder_cache_is_bounded_and_keyed_by_one_spelling(tiny_clip_dir, tmp_path, monkeypatch):
    """Six spellings of one folder once loaded six copies, and nothing was ever evicted."""
    import shutil

    from infi import encoders

    monkeypatch.setattr(encoders, "_SHARED", encoders.OrderedDict())
    monkeypatch.setattr(encoders, "SHARED_MAX", 2)
    monkeypatch.chdir(tiny_clip_dir.parent)
    name = tiny_clip_dir.name
    spellings = [str(tiny_clip_dir), f"{tiny_clip_dir}/", name, f"./{name}", f"{name}/../{name}", f" {name} "]
    first = encoders.shared_encoder(spellings[0])
    assert all(encoders.shared_encoder(s) is first for s in spellings)
    assert len(encoders._SHARED) == 1
    copies = []
    for i in range(2):
        copies.append(tmp_path / f"copy{i}")
        shutil.copytree(tiny_clip_dir, copies[-1])
        encoders.shared_encoder(str(copies[-1]))
    assert len(encoders._SHARED) == 2 and not encoders.is_loaded(str(tiny_clip_dir))  # least recent went


def test_region_resolution_interpolates_position_embeddings(tiny):
    """A finer patch grid at a higher input size, as transformers computes it."""
    from infi.errors import InputError

    images = random_images([(50, 40), (64, 64)])
    native = tiny.embed_images(images)
    fine = tiny.embed_images(images, resolution=64)
    assert native.patches.shape[1] == 16 and native.grid == 4
    assert fine.patches.shape[1] == 64 and fine.grid == 8
    with torch.no_grad():
        pixels = tiny.pixel_values(images, 64)
        out = tiny.model.vision_model(pixel_values=pixels, interpolate_pos_encoding=True)
        tokens = tiny.model.visual_projection(tiny.model.vision_model.post_layernorm(out.last_hidden_state))
    expected = torch.nn.functional.normalize(tokens[:, 1:], dim=-1).numpy()
    np.testing.assert_allclose(fine.patches, expected, atol=1e-5)
    with pytest.raises(InputError, match="resolution: 60 must be at least 32 and a multiple of the patch size 8"):
        tiny.embed_images(images, resolution=60)
