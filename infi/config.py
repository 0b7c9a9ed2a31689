"""Distillation settings: the single source of defaults, ranges and help for the UI and the CLI.

Each field carries its help text and valid range as metadata; ``validate`` checks every field
against it (the error names the field), the CLI builds its flags from the fields
(``add_arguments`` / ``from_namespace``) and the pages read their defaults and bounds from the
same place, so the app and the command line cannot disagree on a default.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from infi.errors import ConfigError

C = TypeVar("C", bound="Settings")


def setting(default: Any, help: str, *, low: float | None = None, high: float | None = None,
            open_low: bool = False, open_high: bool = False, choices: tuple | None = None,
            flag: str | None = None, kind: type | None = None, optional: bool = False) -> Any:
    """A dataclass field with its help text and valid range (inclusive unless ``open_*``).
    ``optional`` fields also take None (``none`` on the command line)."""
    return field(default=default, metadata={"help": help, "low": low, "high": high,
                                            "open_low": open_low, "open_high": open_high,
                                            "choices": choices, "flag": flag,
                                            "kind": kind or type(default), "optional": optional})


def _optional(kind: type):
    """An argparse type that reads ``none`` as None and anything else as ``kind``."""
    def parse(text: str):
        return None if text.strip().lower() == "none" else kind(text)
    parse.__name__ = kind.__name__
    return parse


class Settings:
    """Shared behaviour of the settings dataclasses: range checks and CLI flags."""

    def validate(self) -> None:
        """Check every field's type and range; raises ConfigError naming the field."""
        for f in fields(self):  # type: ignore[arg-type]
            value, meta = getattr(self, f.name), f.metadata
            kind = meta.get("kind") or type(f.default)
            if value is None and meta.get("optional"):
                continue
            if kind is bool:
                if not isinstance(value, bool):
                    raise ConfigError(f"{f.name}: must be true or false, got {value!r}")
                continue
            if meta.get("choices") is not None:
                if value not in meta["choices"]:
                    raise ConfigError(f"{f.name}: choose from {list(meta['choices'])}, got {value!r}")
                continue
            if kind in (int, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{f.name}: must be a number, got {value!r}")
                if kind is int and int(value) != value:
                    raise ConfigError(f"{f.name}: must be a whole number, got {value!r}")
                if value != value:  # NaN
                    raise ConfigError(f"{f.name}: must be a number, got NaN")
                _check_range(f.name, value, meta)

    @classmethod
    def describe(cls, name: str) -> dict:
        """Default, help and range of one field, for a UI widget."""
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name == name:
                return {"default": f.default, **f.metadata}
        raise KeyError(name)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      exclude: tuple[str, ...] = ()) -> None:
        """One ``--flag`` per field, with its default, type, choices and help."""
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in exclude:
                continue
            meta = f.metadata
            flag = meta.get("flag") or "--" + f.name.replace("_", "-")
            text = f"{meta['help']} (default: {f.default})".replace("%", "%%")  # argparse formats help
            if isinstance(f.default, bool):
                parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                    default=f.default, help=text)
            else:
                kind = meta.get("kind") or type(f.default)
                parser.add_argument(flag, dest=f.name, type=_optional(kind) if meta.get("optional") else kind,
                                    default=f.default, choices=meta.get("choices"), help=text)

    @classmethod
    def from_namespace(cls: type[C], args: argparse.Namespace, **overrides: Any) -> C:
        """The settings given on the command line (fields absent from ``args`` keep defaults)."""
        values = {f.name: getattr(args, f.name) for f in fields(cls)  # type: ignore[arg-type]
                  if hasattr(args, f.name)}
        config = cls(**{**values, **overrides})
        config.validate()
        return config

    def with_changes(self: C, **changes: Any) -> C:
        """A copy with some fields changed, validated."""
        config = replace(self, **changes)  # type: ignore[type-var]
        config.validate()
        return config


def _check_range(name: str, value: float, meta: dict) -> None:
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value <= low if meta.get("open_low") else value < low):
        rel = ">" if meta.get("open_low") else ">="
        raise ConfigError(f"{name}: must be {rel} {low}, got {value!r}")
    if high is not None and (value >= high if meta.get("open_high") else value > high):
        rel = "<" if meta.get("open_high") else "<="
        raise ConfigError(f"{name}: must be {rel} {high}, got {value!r}")


@dataclass(frozen=True)
class DistillConfig(Settings):
    """How the concept student is fitted (see ``infi.student.ConceptStudent``)."""

    n_members: int = setting(20, "ensemble size k", low=1, high=100, flag="--members")
    nec: float | None = setting(8.0, "effective concepts per class: the mean number of non-zero "
                                "weights per class; λ is searched to reach it ('none' to give "
                                "alpha instead)", low=0.0, open_low=True, kind=float, optional=True)
    alpha: float = setting(1e-4, "L1 strength λ on standardized concepts, used when nec is none",
                           low=0.0)
    validation_share: float = setting(0.2, "share of images held out for fidelity and accuracy",
                                      low=0.0, high=0.9, open_low=True, open_high=True)
    max_iter: int = setting(500, "iteration bound of the pooled solver stage", low=1)
    member_iter: int = setting(60, "iterations each member refines the pooled solution", low=0)

    def student_params(self) -> dict:
        """The ``ConceptStudent`` keyword arguments these settings stand for."""
        return {"n_members": self.n_members, "alpha": self.alpha, "nec": self.nec,
                "max_iter": self.max_iter, "member_iter": self.member_iter}


@dataclass(frozen=True)
class TuneConfig(Settings):
    """How an edit is refitted (see ``Session.tune``)."""

    hold_others: float | None = setting(
        0.25, "hold every other weight of the touched classes within this band of its current "
        "value (0.25: within a quarter of it; zero stays zero) so correlated concepts cannot take over a removed "
        "one's role; 'none' lets them move freely", low=0.0, kind=float, optional=True)


LOSS_WEIGHTS = ("w_node", "w_edge", "w_relation", "w_pseudo")


@dataclass(frozen=True)
class PRGConfig(Settings):
    """Every weight, temperature and schedule knob of PRG distillation (see ``infi.prg``)."""

    method: str = setting("prg", "prg, kd (vanilla KD on logits) or feature (node loss only)",
                          choices=("prg", "kd", "feature"))
    arch: str = setting("small", "student: small (<1M parameters, 64x64) or resnet18 (32x32, 224x224)",
                        choices=("small", "resnet18"))
    w_node: float = setting(1.0, "weight of node alignment 1 - cos(z, v)", low=0.0)
    w_edge: float = setting(1.0, "weight of sample-proxy edge alignment (KL)", low=0.0)
    w_relation: float = setting(1.0, "weight of sample-sample relation alignment", low=0.0)
    w_pseudo: float = setting(1.0, "weight of cross-entropy to the teacher's pseudo-labels", low=0.0)
    tau_edge: float = setting(0.07, "temperature of the sample-proxy edges", low=0.0, open_low=True)
    tau_relation: float = setting(0.1, "temperature of the sample-sample relations", low=0.0,
                                  open_low=True)
    kd_temperature: float = setting(4.0, "temperature of vanilla KD", low=0.0, open_low=True)
    epochs: int = setting(10, "training epochs", low=1, high=1000)
    batch_size: int = setting(64, "images per batch", low=2, high=4096)
    lr: float = setting(3e-3, "AdamW learning rate (one-cycle maximum)", low=0.0, open_low=True)
    weight_decay: float = setting(5e-4, "AdamW weight decay", low=0.0)
    validation_share: float = setting(0.1, "share of images held out for early stopping on "
                                      "teacher agreement", low=0.0, high=0.5, open_low=True,
                                      open_high=True)
    patience: int = setting(3, "epochs without better agreement before stopping", low=1)
    seed: int = setting(0, "random seed", low=0)
    device: str = setting("auto", "auto, cpu, cuda or mps", choices=("auto", "cpu", "cuda", "mps"))

    def validate(self) -> None:
        super().validate()
        if self.method == "prg" and not any(getattr(self, n) > 0 for n in LOSS_WEIGHTS):
            raise ConfigError("w_*: switch at least one loss term on")

