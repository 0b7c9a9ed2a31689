"""Tuning actions turned into weight bounds, and the Provenance log of applied edits.

An action names a concept, a class (or all classes) and a kind; ``w0`` is the weight before the
action, per ensemble member:
- ``downtune(x)``, 0 <= x < 1: ``|w| <= x|w0|``, sign kept;
- ``uptune(x)``, x > 1: ``|w| >= x|w0|``, sign kept (``magnitude``, signed, when ``w0`` is ~0);
- ``remove``: ``w = 0``;  ``lock``: ``w = w0``.
Bounds accumulate: an edit tightens the box of earlier edits, so a removed concept stays removed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

from infi.errors import TuningError

KINDS = ("uptune", "downtune", "remove", "lock")
ALL_CLASSES = "*"
ZERO_WEIGHT = 1e-6


@dataclass(frozen=True)
class TuningAction:
    """One edit of one concept's influence on one class (``ALL_CLASSES`` for every class), or of
    a whole group of concepts (a corpus category such as ``background``): give ``group`` and
    leave ``concept`` empty. A group action expands to one action per concept of the group, each
    carrying the group's name, so provenance records both."""

    concept: str
    kind: Literal["uptune", "downtune", "remove", "lock"]
    class_name: str = ALL_CLASSES
    scale: float | None = None
    magnitude: float | None = None
    group: str | None = None

    @classmethod
    def for_group(cls, group: str, kind: str, class_name: str = ALL_CLASSES,
                  scale: float | None = None, magnitude: float | None = None) -> TuningAction:
        return cls("", kind, class_name, scale, magnitude, group)  # type: ignore[arg-type]

    @property
    def is_group(self) -> bool:
        return bool(self.group) and not self.concept

    def validate(self) -> None:
        if not self.concept and not self.group:
            raise TuningError("action: name a concept or a group")
        if self.kind not in KINDS:
            raise TuningError(f"kind: unknown action {self.kind!r}; choose from {list(KINDS)}")
        what = f"{self.concept or self.group} on {'all classes' if self.class_name == ALL_CLASSES else self.class_name}"
        if self.kind == "downtune" and (self.scale is None or not 0 <= self.scale < 1):
            raise TuningError(f"scale: downtune needs a scale in [0, 1), got {self.scale!r} ({what})")
        if self.kind == "uptune" and (self.scale is None or not self.scale > 1):
            raise TuningError(f"scale: uptune needs a scale above 1, got {self.scale!r} ({what})")
        if self.magnitude is not None and not np.isfinite(self.magnitude):
            raise TuningError(f"magnitude: must be a finite number, got {self.magnitude!r}")

    @classmethod
    def from_dict(cls, d: dict) -> TuningAction:
        unknown = set(d) - {"concept", "kind", "class_name", "scale", "magnitude", "group"}
        if unknown:
            raise TuningError(f"action: unknown field(s) {sorted(unknown)}")
        if ("concept" not in d and "group" not in d) or "kind" not in d:
            raise TuningError("action: each action needs a 'concept' (or a 'group') and a 'kind'")
        action = cls(**{"concept": "", **d})
        action.validate()
        return action


def expand_groups(actions: Sequence[TuningAction], groups: dict[str, Sequence[str]]) -> list[TuningAction]:
    """Group actions as one action per concept of the group (each keeps the group's name);
    concept actions unchanged. An unknown or empty group is an error naming the known ones."""
    out: list[TuningAction] = []
    for action in actions:
        if not action.is_group:
            out.append(action)
            continue
        members = list(groups.get(action.group or "", ()))
        if not members:
            raise TuningError(f"group: {action.group!r} is not a concept group of this student; "
                              f"groups: {sorted(groups)}")
        out += [replace(action, concept=c) for c in members]
    return out


def empty_bounds(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.full(shape, -np.inf, np.float32), np.full(shape, np.inf, np.float32)


def apply_actions(actions: Sequence[TuningAction], coef: np.ndarray, lower: np.ndarray,
                  upper: np.ndarray, concepts: Sequence[str], class_names: Sequence[str],
                  hold_others: float | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Tighten bounds [k, K, C] for each (concept-level) action given current weights ``coef``.

    Returns new (lower, upper) and the sorted indices of the classes touched. Two actions on the
    same concept and target in one edit are an error (which one was meant?); a class-specific
    action after an all-classes one refines it for that class.

    ``hold_others`` (a band, e.g. 0.1): every weight of the touched classes that no action names
    is held within ``w ± band·|w|`` of its current value (zero stays zero), so the refit cannot
    hand a removed concept's role to its correlated neighbours. It is a box bound like the others.
    """
    if hold_others is not None and not (np.isfinite(hold_others) and hold_others >= 0):
        raise TuningError(f"hold_others: the band must be a number >= 0, got {hold_others!r}")
    seen: dict[tuple[str, str], list[str]] = {}
    for action in actions:
        seen.setdefault((action.concept, action.class_name), []).append(action.kind)
    for (concept, class_name), kinds in seen.items():
        if len(kinds) > 1:
            where = "all classes" if class_name == ALL_CLASSES else repr(class_name)
            raise TuningError(f"actions: {concept!r} on {where} has {len(kinds)} actions in one edit "
                             f"({', '.join(kinds)}); keep one")
    lower, upper = lower.copy(), upper.copy()
    concept_index = {c: i for i, c in enumerate(concepts)}
    class_index = {c: i for i, c in enumerate(class_names)}
    touched: set[int] = set()
    named: set[tuple[int, int]] = set()
    for action in actions:
        action.validate()
        if action.concept not in concept_index:
            raise TuningError(f"concept: {action.concept!r} is not among the student's concepts")
        if action.class_name != ALL_CLASSES and action.class_name not in class_index:
            raise TuningError(f"class_name: {action.class_name!r} is not among the classes "
                             f"{list(class_names)}")
        j = concept_index[action.concept]
        cols = (range(len(class_names)) if action.class_name == ALL_CLASSES
                else [class_index[action.class_name]])
        for c in cols:
            w0 = coef[:, j, c]
            lo, hi = _bounds_for(action, w0, class_names[c])
            lower[:, j, c] = np.maximum(lower[:, j, c], lo)
            upper[:, j, c] = np.minimum(upper[:, j, c], hi)
            # Conflicting edits (uptune after remove, say): the latest action wins.
            clash = lower[:, j, c] > upper[:, j, c]
            lower[clash, j, c], upper[clash, j, c] = lo[clash], hi[clash]
            touched.add(c)
            named.add((j, c))
    if hold_others is not None:
        for c in touched:
            free = [j for j in range(len(concepts)) if (j, c) not in named]
            w = coef[:, free, c]
            band = hold_others * np.abs(w)
            lo, hi = np.maximum(lower[:, free, c], w - band), np.minimum(upper[:, free, c], w + band)
            clash = lo > hi  # an earlier edit's bound outside the band: the band wins, it is newer
            lower[:, free, c], upper[:, free, c] = np.where(clash, w - band, lo), np.where(clash, w + band, hi)
    return lower, upper, sorted(touched)


def _bounds_for(action: TuningAction, w0: np.ndarray, class_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Bounds [k] for one concept and class from the members' current weights ``w0`` [k]."""
    inf = np.full_like(w0, np.inf)
    if action.kind == "remove":
        return np.zeros_like(w0), np.zeros_like(w0)
    if action.kind == "lock":
        return w0.copy(), w0.copy()
    x = float(action.scale)
    target = x * w0
    if action.kind == "downtune":
        return np.minimum(target, 0), np.maximum(target, 0)
    # uptune: |w| >= x|w0| with the sign of w0. Members where L1 zeroed the concept follow the
    # ensemble (x times the member mean); where the mean is ~0 too, the user's signed magnitude.
    near_zero = np.abs(w0) < ZERO_WEIGHT
    if near_zero.any():
        mean = float(w0.mean())
        if action.magnitude is not None:
            fill = action.magnitude
        elif abs(mean) >= ZERO_WEIGHT:
            fill = x * mean
        else:
            raise TuningError(
                f"magnitude: concept {action.concept!r} has weight ~0 on class {class_name!r}; "
                "uptune it with a signed magnitude (e.g. 0.5 or -0.5)"
            )
        target = np.where(near_zero, fill, target)
    lo = np.where(target > 0, target, -inf)
    hi = np.where(target > 0, inf, target)
    return lo, hi


# --- provenance ---------------------------------------------------------------------------------


def _encode(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "float32_base64": base64.b64encode(a.tobytes()).decode()}


def _decode(d: dict) -> np.ndarray:
    raw = base64.b64decode(d["float32_base64"], validate=True)
    shape = tuple(int(s) for s in d["shape"])
    if len(raw) != 4 * int(np.prod(shape)):
        raise TuningError("provenance: a weights snapshot does not match its declared shape")
    return np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()


@dataclass
class ProvenanceStep:
    """One applied edit: the actions, the bounds after it, metrics before/after, weights after."""

    actions: list[dict]
    metrics_before: dict
    metrics_after: dict
    coef: np.ndarray
    intercept: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    touched_classes: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    label: str = ""
    hold_others: float | None = None  # the band other weights of the touched classes were held in

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("coef", "intercept", "lower", "upper")}
        d |= {k: _encode(getattr(self, k)) for k in ("coef", "intercept", "lower", "upper")}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ProvenanceStep:
        arrays = {k: _decode(d[k]) for k in ("coef", "intercept", "lower", "upper")}
        rest = {k: d[k] for k in ("actions", "metrics_before", "metrics_after")}
        hold = d.get("hold_others")
        return cls(**rest, **arrays, touched_classes=list(d.get("touched_classes", [])),
                   created=float(d.get("created", 0.0)), label=str(d.get("label", "")),
                   hold_others=None if hold is None else float(hold))


@dataclass
class Provenance:
    """The ordered log of edits; step 0 is the fitted student itself."""

    steps: list[ProvenanceStep] = field(default_factory=list)

    def add(self, step: ProvenanceStep) -> int:
        self.steps.append(step)
        return len(self.steps) - 1

    def __len__(self) -> int:
        return len(self.steps)

    def table(self) -> list[dict]:
        """One row per step for display: what was done and how fidelity and accuracy moved, on
        the held-out split and on every evaluation set (``{name}_accuracy``)."""
        rows = []
        for i, s in enumerate(self.steps):
            row = {"step": i, "label": s.label,
                   "actions": describe_actions(s.actions) or (s.label if i else "fit"),
                   "fidelity": s.metrics_after.get("fidelity"),
                   "accuracy": s.metrics_after.get("accuracy")}
            row |= {k: v for k, v in s.metrics_after.items()
                    if k.endswith("_accuracy") and not k.endswith("teacher_accuracy")
                    and k != "accuracy" and (v is None or isinstance(v, (int, float)))}
            row["held"] = s.hold_others
            rows.append(row)
        return rows

    def to_json(self) -> str:
        return json.dumps({"format": "infi-provenance", "version": 1,
                           "steps": [s.to_dict() for s in self.steps]})

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise TuningError(f"provenance: not valid JSON ({err})") from err
        if not isinstance(data, dict) or data.get("format") != "infi-provenance":
            raise TuningError("provenance: this is not an Infi provenance log")
        try:
            return cls([ProvenanceStep.from_dict(s) for s in data["steps"]])
        except (KeyError, TypeError, ValueError) as err:
            raise TuningError(f"provenance: a step is malformed ({err})") from err


def describe_actions(actions: Sequence[dict]) -> str:
    """Actions in words; the concepts a group expanded to are named once, after the group:
    'remove background on triangle (grass, sky, sand)'."""
    parts: list[str] = []
    seen_groups: dict[tuple, list[str]] = {}
    for a in actions:
        if a.get("group"):
            key = (a["group"], a["kind"], a.get("class_name", ALL_CLASSES), a.get("scale"))
            if key not in seen_groups:
                seen_groups[key] = []
                parts.append(key)  # type: ignore[arg-type]
            seen_groups[key].append(a["concept"])
        else:
            parts.append(_describe(a))
    out = []
    for part in parts:
        if isinstance(part, tuple):
            group, kind, target, scale = part
            a = {"concept": group, "kind": kind, "class_name": target, "scale": scale}
            out.append(f"{_describe(a)} ({', '.join(seen_groups[part])})")
        else:
            out.append(part)
    return "; ".join(out)


def _describe(action: dict) -> str:
    target = "all classes" if action.get("class_name", ALL_CLASSES) == ALL_CLASSES else action["class_name"]
    scale = f" ×{action['scale']:g}" if action.get("scale") is not None else ""
    size = f" (magnitude {action['magnitude']:g})" if action.get("magnitude") is not None else ""
    return f"{action['kind']} {action['concept']}{scale}{size} on {target}"


def compensation(before: np.ndarray, after: np.ndarray, actions: Sequence[dict], concepts: Sequence[str],
                 class_names: Sequence[str], touched: Sequence[str], top: int = 5,
                 min_growth: float = 0.05) -> list[dict]:
    """The concepts that took over after a refit: in the touched classes, the weights no action
    named whose magnitude grew most (member means of ``before``/``after`` [k, K, C]), largest first.
    Each row: class, concept, before, after, growth (|after| - |before|)."""
    Wb, Wa = np.asarray(before).mean(0), np.asarray(after).mean(0)
    named = {(a["concept"], a.get("class_name", ALL_CLASSES)) for a in actions}
    rows = []
    for name in touched:
        c = list(class_names).index(name)
        for j, concept in enumerate(concepts):
            if (concept, name) in named or (concept, ALL_CLASSES) in named:
                continue
            growth = abs(float(Wa[j, c])) - abs(float(Wb[j, c]))
            if growth >= min_growth:
                rows.append({"class": name, "concept": concept, "before": float(Wb[j, c]),
                             "after": float(Wa[j, c]), "growth": growth})
    return sorted(rows, key=lambda r: -r["growth"])[:top]
