"""Whole concept extraction against the raw CLIP image forward, ViT-B/32, in one run.

The model is built from ``CLIPConfig()`` defaults (the ViT-B/32 architecture; random weights cost
the same) and saved with a processor, then loaded through ClipEncoder like any checkpoint.
Pipeline: PNG bytes -> decode -> preprocess -> encode -> concept scores for 584 concepts.
Raw: ``get_image_features`` on ready pixel tensors, same batch size. Concept text embeddings are
computed once per corpus, before timing (reported separately). Last line: JSON with
images_per_s, raw_images_per_s, pipeline_vs_raw.
"""

from __future__ import annotations

import argparse
import io
import tempfile

import torch
from _common import emit, timed
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from infi.concepts import build_bank, concept_scores
from infi.corpus import Corpus, builtin_corpus
from infi.data import from_files
from infi.demo.encoder import train_tokenizer
from infi.demo.world import generate_world
from infi.encoders import ClipEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=192)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    folder = tempfile.mkdtemp()
    CLIPModel(CLIPConfig()).save_pretrained(folder)
    tok = train_tokenizer(builtin_corpus().concepts, merges=2000)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tok).save_pretrained(folder)
    encoder = ClipEncoder.load(folder)

    world = generate_world(args.n, seed=424242, image_size=256)
    files = []
    for i in range(args.n):
        buf = io.BytesIO()
        Image.fromarray(world.images[i]).save(buf, "PNG")
        files.append((f"{i}.png", buf.getvalue()))
    full = builtin_corpus()
    corpus = Corpus(full.concepts[:584], full.categories[:584], ("{}",), "bench")
    bank, bank_s = timed(build_bank, encoder, corpus)
    print(f"concept bank: {len(corpus)} concepts in {bank_s:.1f}s (once per corpus)")

    # Warm-up both paths.
    encoder.embed_images(world.images[:4], patches=False)

    def pipeline():
        images = from_files(files)
        emb = encoder.embed_images(images.images(), batch_size=args.batch, patches=False)
        return concept_scores(emb, bank, "global")

    pixels = encoder.pixel_values(world.images)

    def raw():
        with torch.inference_mode():
            for s in range(0, args.n, args.batch):
                encoder.model.get_image_features(pixel_values=pixels[s:s + args.batch])

    rounds = []
    for _ in range(2):  # interleave so drift hits both alike
        _, raw_s = timed(raw)
        matrix, pipe_s = timed(pipeline)
        rounds.append((raw_s, pipe_s))
        print(f"raw forward {args.n / raw_s:.1f} img/s; whole extraction {args.n / pipe_s:.1f} img/s")
    raw_s = min(r[0] for r in rounds)
    pipe_s = min(r[1] for r in rounds)
    assert matrix.X.shape == (args.n, 584)
    emit({"images_per_s": args.n / pipe_s, "raw_images_per_s": args.n / raw_s,
          "pipeline_vs_raw": raw_s / pipe_s})


if __name__ == "__main__":
    main()
