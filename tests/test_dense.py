"""Dense last-block variants on a tiny CLIP built from CLIPConfig: vanilla is transformers' own
last layer; each variant matches a hand-written per-head reference."""

import math

import numpy as np
import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from infi.dense import DENSE_METHODS, dense_forward, gaussian_window, last_block
from infi.encoders import project_tokens


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = CLIPConfig(text_config=dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, max_position_embeddings=16),
                        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, image_size=48, patch_size=8),
                        projection_dim=16)
    return CLIPModel(config).eval()


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(1))


def last_input(model, pixels):
    """The last block's input, as transformers computes it (hidden states before the last layer)."""
    out = model.vision_model(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[-2], out.last_hidden_state


def test_vanilla_is_transformers_own_last_layer(model, pixels):
    with torch.no_grad():
        x, last = last_input(model, pixels)
        assert torch.allclose(last_block(model.vision_model.encoder.layers[-1], x, "vanilla"), last, atol=1e-5)
        g, p = dense_forward(model, pixels, "vanilla")
        g0, p0 = project_tokens(model, pixels)
    assert torch.allclose(g, g0, atol=1e-6) and torch.allclose(p, p0, atol=1e-6)


def reference(layer, x: np.ndarray, method: str) -> np.ndarray:
    """A per-head numpy version of each method, written from the papers' formulas."""
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    with torch.no_grad():
        y = layer.layer_norm1(t(x)).numpy()
        a = layer.self_attn
        q, k, v = (m(t(y)).numpy() for m in (a.q_proj, a.k_proj, a.v_proj))
        wo, bo = a.out_proj.weight.numpy(), a.out_proj.bias.numpy()
    heads, d = a.num_heads, q.shape[-1] // a.num_heads
    out = np.zeros_like(v)
    grid = int(round(math.sqrt(x.shape[1] - 1)))
    for b in range(x.shape[0]):
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            qh, kh, vh = q[b, :, cols], k[b, :, cols], v[b, :, cols]

            def softmax(z):
                z = z - z.max(1, keepdims=True)
                return np.exp(z) / np.exp(z).sum(1, keepdims=True)

            if method == "maskclip":
                out[b, :, cols] = vh
                continue
            s = 1 / math.sqrt(d)
            if method == "clearclip":
                w = softmax(qh @ qh.T * s)
            elif method == "sclip":
                w = softmax(qh @ qh.T * s) + softmax(kh @ kh.T * s)
            else:  # naclip
                bias = np.zeros((len(kh), len(kh)), np.float32)
                for i in range(1, len(kh)):
                    for j in range(1, len(kh)):
                        (yi, xi), (yj, xj) = divmod(i - 1, grid), divmod(j - 1, grid)
                        bias[i, j] = math.exp(-((yi - yj) ** 2 + (xi - xj) ** 2) / (2 * 5.0**2))
                w = softmax(kh @ kh.T * s + bias)
            out[b, :, cols] = w @ vh
    return out @ wo.T + bo


@pytest.mark.parametrize("method", [m for m in DENSE_METHODS if m != "vanilla"])
def test_each_dense_method_matches_its_reference(model, pixels, method):
    layer = model.vision_model.encoder.layers[-1]
    with torch.no_grad():
        x, _ = last_input(model, pixels)
        ours = last_block(layer, x, method).numpy()
        g, p = dense_forward(model, pixels, method)
        g0, _ = project_tokens(model, pixels)
    np.testing.assert_allclose(ours, reference(layer, x.numpy(), method), atol=1e-4)
    assert torch.allclose(g, g0, atol=1e-6)  # the global embedding is CLIP's own whatever the method
    with torch.no_grad():
        expected = model.visual_projection(model.vision_model.post_layernorm(torch.from_numpy(ours)[:, 1:]))
    assert torch.allclose(p, expected, atol=1e-5) and p.shape == (3, 36, 16)


def test_gaussian_window_leaves_the_cls_token_alone():
    w = gaussian_window(3)
    assert w.shape == (10, 10) and w[0].abs().sum() == 0 and w[:, 0].abs().sum() == 0
    assert w[1, 1] == 1 and w[1, 2] > w[1, 3] > 0


def test_unknown_method_is_named(model, pixels):
    with pytest.raises(ValueError, match="dense method: 'gem'"):
        dense_forward(model, pixels, "gem")
