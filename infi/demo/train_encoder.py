"""Train the bundled demo encoder on Shapes World: ``python -m infi.demo.train_encoder``.

Objective (all through the public ``CLIPModel`` paths that Infi uses later):
- CLIP's symmetric contrastive loss between images and full captions;
- attribute prompts: for each attribute, the image embedding classifies its value among that
  attribute's prompts (partial captions such as "a red shape", drawn from several templates);
- dense region terms, as in segmentation-tuned CLIPs: each patch token (last hidden state ->
  post layernorm -> visual projection) on the object mask classifies the shape and the colour, each
  patch on the background classifies the background, against the same words, so a word's best
  patch lands where the word is true.
The run is seeded and single-process, so it is repeatable on one machine. Training images come
from the shifted split (attributes independent) with seeds reserved for training.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPModel

from infi.demo.encoder import (
    ATTRIBUTE_PROMPTS,
    DEMO_ENCODER_DIR,
    build_config,
    build_image_processor,
    save_encoder,
    train_tokenizer,
)
from infi.demo.evaluate import attribute_codes, patch_coverage
from infi.demo.world import ATTRIBUTE_VALUES, ATTRIBUTES, generate_world
from infi.encoders import project_tokens

TRAIN_SEED = 1000  # world seeds >= 1000 are reserved for training the bundled models
PROMPT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "shape": ("a photo of a {}", "a {}", "{}", "a {} shape", "an image of a {}"),
    "colour": ("a photo of a {} shape", "a {} shape", "{}", "something {}", "a {} object"),
    "fill": ("a photo of a {} shape", "a {} shape", "{}", "a shape with a {} pattern"),
    "size": ("a photo of a {} shape", "a {} shape", "{}", "a {} object"),
    "background": ("a photo of a shape on {}", "a shape on {}", "{}", "a {} background",
                   "a photo of {}"),
}


def pixel_tensor(images: np.ndarray, processor=None) -> torch.Tensor:
    """uint8 [N,H,W,3] -> normalized float [N,3,H,W], identical to the saved image processor."""
    processor = processor or build_image_processor()
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - mean) / std


def encode_text(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    return model.get_text_features(**batch).pooler_output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO_ENCODER_DIR)
    parser.add_argument("--images", type=int, default=48000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    t0 = time.time()
    world = generate_world(args.images, split="shifted", seed=TRAIN_SEED)
    held = generate_world(600, split="shifted", seed=TRAIN_SEED + 1)
    log(f"generated {len(world)} training images in {time.time() - t0:.0f}s")

    prompt_texts = [t.format(v) for a in ATTRIBUTES for t in PROMPT_TEMPLATES[a]
                    for v in ATTRIBUTE_VALUES[a]]
    tokenizer = train_tokenizer(world.captions[:20000] + prompt_texts * 20)
    model = CLIPModel(build_config(tokenizer))
    log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    pixels = pixel_tensor(world.images)
    grid = model.config.vision_config.image_size // model.config.vision_config.patch_size
    cover = torch.from_numpy(patch_coverage(world.masks, grid).astype(np.float32))
    targets = {a: torch.from_numpy(attribute_codes(world, a).astype(np.int64)) for a in ATTRIBUTES}
    captions = world.captions
    caption_ids = tokenizer(captions, padding="max_length", max_length=32, truncation=True,
                            return_tensors="pt")
    n_shape, n_colour = len(ATTRIBUTE_VALUES["shape"]), len(ATTRIBUTE_VALUES["colour"])

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": rest, "weight_decay": 0.0}], lr=args.lr)
    warmup = 150

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    t0 = time.time()
    for step in range(args.steps):
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = torch.from_numpy(rng.choice(len(world), size=args.batch, replace=False))
        templates = {a: PROMPT_TEMPLATES[a][rng.integers(len(PROMPT_TEMPLATES[a]))]
                     for a in ATTRIBUTES}
        prompts = [templates[a].format(v) for a in ATTRIBUTES for v in ATTRIBUTE_VALUES[a]]
        img_global, img_patches = project_tokens(model, pixels[idx])
        ids = caption_ids["input_ids"][idx]
        length = int(caption_ids["attention_mask"][idx].sum(1).max())
        cap = model.get_text_features(input_ids=ids[:, :length],
                                      attention_mask=caption_ids["attention_mask"][idx][:, :length]
                                      ).pooler_output
        prm = encode_text(model, tokenizer, prompts)
        scale = model.logit_scale.exp().clamp(max=100)
        img_n = F.normalize(img_global, dim=-1)
        cap_n = F.normalize(cap, dim=-1)
        prm_n = F.normalize(prm, dim=-1)
        logits = scale * img_n @ cap_n.T
        labels = torch.arange(len(idx))
        loss_clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

        # Attribute prompts on the global embedding.
        loss_attr = 0.0
        offset = 0
        spans = {}
        for a in ATTRIBUTES:
            k = len(ATTRIBUTE_VALUES[a])
            spans[a] = (offset, offset + k)
            loss_attr = loss_attr + F.cross_entropy(scale * img_n @ prm_n[offset:offset + k].T,
                                                    targets[a][idx])
            offset += k

        # Dense region terms: words {shape or colour} vs backgrounds, per patch.
        pat_n = F.normalize(img_patches, dim=-1)  # [B,P,D]
        s0, s1 = spans["shape"]
        c0, c1 = spans["colour"]
        b0, b1 = spans["background"]
        vocab_shape = torch.cat([prm_n[s0:s1], prm_n[b0:b1]])
        vocab_colour = torch.cat([prm_n[c0:c1], prm_n[b0:b1]])
        cov = cover[idx]
        on, off = cov >= 0.5, cov <= 0.05
        bg_t = targets["background"][idx].unsqueeze(1).expand_as(cov)
        t_shape = torch.where(on, targets["shape"][idx].unsqueeze(1).expand_as(cov), n_shape + bg_t)
        t_colour = torch.where(on, targets["colour"][idx].unsqueeze(1).expand_as(cov),
                               n_colour + bg_t)
        use = on | off
        ls = F.cross_entropy((scale * pat_n @ vocab_shape.T)[use], t_shape[use])
        lc = F.cross_entropy((scale * pat_n @ vocab_colour.T)[use], t_colour[use])
        loss = loss_clip + loss_attr + 0.5 * (ls + lc)

        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            log(f"step {step:5d} loss {loss.item():.3f} clip {loss_clip.item():.3f} "
                f"attr {loss_attr.item():.3f} dense {(ls + lc).item():.3f} "
                f"{time.time() - t0:.0f}s")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            log(f"eval step {step + 1}: {zero_shot_report(model, tokenizer, held)}")

    save_encoder(model, tokenizer, args.out)
    log(f"saved to {args.out} after {time.time() - t0:.0f}s")
    return 0


@torch.inference_mode()
def zero_shot_report(model, tokenizer, world) -> dict[str, float]:
    """Zero-shot accuracy per attribute with ``ATTRIBUTE_PROMPTS`` (one prompt per value)."""
    model.eval()
    img = F.normalize(project_tokens(model, pixel_tensor(world.images))[0], dim=-1)
    report = {}
    for a in ATTRIBUTES:
        values = ATTRIBUTE_VALUES[a]
        txt = F.normalize(encode_text(model, tokenizer,
                                      [ATTRIBUTE_PROMPTS[a].format(v) for v in values]), dim=-1)
        pred = (img @ txt.T).argmax(1).numpy()
        truth = world.attributes[a].map({v: i for i, v in enumerate(values)}).to_numpy()
        report[a] = round(float((pred == truth).mean()), 3)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
