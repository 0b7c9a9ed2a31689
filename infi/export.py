"""Deployable exports of a small torch model: ONNX (checked with onnxruntime) and a
``torch.export`` program (``.pt2``), each compared with the eager model on a fresh batch.

TorchScript is deprecated in torch 2.13; these are the formats the ecosystem deploys.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT, OUTPUT = "images", "logits"
ONNX_SNIPPET = '''import json, numpy as np, onnxruntime as ort
from PIL import Image

card = json.load(open("prg_student.json"))
size = card["image_size"]
image = Image.open("photo.jpg").convert("RGB").resize((size, size))
x = (np.asarray(image, np.float32) / 255).transpose(2, 0, 1)[None]  # [1, 3, H, W] in [0, 1]
logits = ort.InferenceSession("prg_student.onnx").run(["logits"], {"images": x})[0]
print(card["classes"][int(logits.argmax())])'''
README = ("A compact image classifier exported by Infi.\n\n"
          "prg_student.onnx      ONNX (input 'images': float RGB [B, 3, H, W] in [0, 1]; output 'logits')\n"
          "prg_student.pt2       the same as a torch.export program (torch.export.load; trusted files only)\n"
          "prg_student.safetensors + prg_student.json   weights and the card (classes, image size, metrics)\n\n"
          "Run it on one image with onnxruntime:\n\n" + ONNX_SNIPPET + "\n")


def _batch_dim() -> dict:
    return {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> float:
    """Write ``model`` as ONNX (dynamic batch; input ``images``, output ``logits``) and return the
    largest absolute difference between onnxruntime and the eager model on a new batch."""
    import onnxruntime as ort

    model = model.eval()
    with warnings.catch_warnings():  # the exporter's own deprecation chatter, not the person's concern
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=_batch_dim(), verbose=False)
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check = torch.rand(3, *example.shape[1:])
    with torch.inference_mode():
        eager = model(check).numpy()
    return float(np.abs(session.run([OUTPUT], {INPUT: check.numpy()})[0] - eager).max())


def export_program(model: nn.Module, example: torch.Tensor, path: Path) -> float:
    """Write ``model`` as a ``torch.export`` program (``.pt2``, dynamic batch) and return the largest
    absolute difference between the program loaded back and the eager model on a new batch."""
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (example,), dynamic_shapes=_batch_dim())
        torch.export.save(program, str(path))
        loaded = torch.export.load(str(path)).module()
    check = torch.rand(3, *example.shape[1:])
    with torch.inference_mode():
        return float((loaded(check) - model(check)).abs().max())
