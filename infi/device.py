"""Where torch work runs: the one device picker for encoders, teachers and PRG training."""

from __future__ import annotations

import torch

from infi.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, else Apple's MPS, else the CPU; a named device must be available."""
    if name not in DEVICES:
        raise ConfigError(f"device: choose from {list(DEVICES)}, got {name!r}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if (name == "cuda" and not torch.cuda.is_available()) or (name == "mps" and not has_mps):
        raise ConfigError(f"device: {name!r} is not available on this machine; use 'auto' or 'cpu'")
    return torch.device(name)
