"""The bundled demo teacher: a small plain-torch CNN that classifies Shapes World shapes.

It is trained on the biased split, so it leans partly on the background shortcut; that is the
behaviour the concept student is meant to expose and repair. Weights are safetensors plus a JSON
config; nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from infi.data import ImageSet
from infi.teachers import Progress, batched_predict

DEMO_TEACHER_DIR = Path(__file__).resolve().parent / "assets" / "teacher"


def teacher_dir(scenario: str = "background") -> Path:
    """Where a scenario's teacher lives: the original demo teacher for ``background``."""
    if scenario == "background":
        return DEMO_TEACHER_DIR
    return DEMO_TEACHER_DIR.parent / "teachers" / scenario.replace("+", "-")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class ShapesCNN(nn.Module):
    """Conv-BN-ReLU blocks with stride-2 downsampling, global average pooling and a linear head."""

    def __init__(self, num_classes: int = 6, channels: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,H,W] centred on zero, the teacher's only preprocessing."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0 - 0.5


@dataclass
class DemoTeacher:
    """The loaded demo teacher: the network, its class names and its training record."""

    model: ShapesCNN
    class_names: tuple[str, ...]
    image_size: int
    record: dict

    @torch.inference_mode()
    def predict_proba(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities [N, C] for uint8 images [N, H, W, 3] of the training size."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(
                f"images: the demo teacher takes uint8 arrays of shape [N, {self.image_size}, "
                f"{self.image_size}, 3], got {images.shape}"
            )
        self.model.eval()
        out = [torch.softmax(self.model(to_input(images[i:i + batch_size])), dim=1)
               for i in range(0, len(images), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.class_names)), np.float32)


def save_teacher(model: ShapesCNN, config: dict, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / WEIGHTS_FILE))
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def load_demo_teacher(path: Path | str = DEMO_TEACHER_DIR) -> DemoTeacher:
    """Load the teacher from safetensors + JSON; never unpickles anything."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"The demo teacher is missing at {path}; rebuild it with "
            "`python -m infi.demo.train_teacher`."
        )
    config = json.loads((path / CONFIG_FILE).read_text())
    model = ShapesCNN(len(config["class_names"]), tuple(config["channels"]))
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    model.eval()
    return DemoTeacher(model, tuple(config["class_names"]), int(config["image_size"]),
                       config.get("record", {}))


@dataclass
class DemoTeacherAdapter:
    """A bundled Shapes World CNN as an Infi teacher: ``demo`` (the background scenario's), or a
    classroom scenario's (registered as ``demo-colour`` and so on, ``teacher_name``)."""

    name: str = "demo teacher"
    class_names: tuple[str, ...] = field(default=())
    scenario: str = "background"

    def __post_init__(self) -> None:
        self._teacher = load_demo_teacher(teacher_dir(self.scenario))
        self.class_names = self._teacher.class_names

    def predict_proba(self, images: ImageSet, progress: Progress | None = None) -> np.ndarray:
        arrays = images.as_arrays(self._teacher.image_size)
        return batched_predict(images, 256, lambda idx: self._teacher.predict_proba(arrays[idx.start:idx.stop]),
                               progress).astype(np.float32)
