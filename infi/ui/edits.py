"""Pending edits on the Fine-tune page, keyed by (class, concept) or (class, group), never by a
table row: a table re-sorted after a refit cannot move a choice onto another concept.

Pure functions over a plain dict, so they are tested without Streamlit; ``infi.ui.state`` keeps
the dict in the session.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from infi.errors import TuningError
from infi.tuning import ALL_CLASSES, TuningAction

ALL_LABEL = "All classes"
NO_ACTION = "—"  # shown in the action column for "no edit" (Streamlit shows an empty choice as "None")
GROUP_PREFIX = "group:"
DEFAULT_SCALE = {"downtune": 0.2, "uptune": 2.0}
EDIT_COLUMNS = ("action", "scale", "magnitude")

Key = tuple[str, str]  # (class label or ALL_LABEL, concept name or "group:<name>")


def group_item(group: str) -> str:
    return GROUP_PREFIX + group


def parse_number(text, what: str) -> float | None:
    """A scale or magnitude cell: blank is None (the default), anything else a finite number."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    text = str(text).strip()
    if not text:
        return None
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        raise TuningError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TuningError(f"{what}: {text!r} is not a finite number")
    return value


def choice_of(row) -> dict | None:
    """The edit a table row asks for (action, scale and magnitude as text), or None."""
    kind = str(row.get("action") or "").strip()
    if not kind or kind == NO_ACTION:
        return None
    return {"kind": kind, "scale": str(row.get("scale") or "").strip(),
            "magnitude": str(row.get("magnitude") or "").strip()}


def merge(pending: dict[Key, dict], target: str, item_column: str, edited: pd.DataFrame,
          prefix: str = "") -> dict[Key, dict]:
    """Pending edits after the person edited a table: the table is the truth for the concepts
    (or groups) it shows, matched by name, whatever their row positions; others stay as they are."""
    out = dict(pending)
    for _, row in edited.iterrows():
        key = (target, prefix + str(row[item_column]))
        choice = choice_of(row)
        if choice is None:
            out.pop(key, None)
        else:
            out[key] = choice
    return out


def prefill(frame: pd.DataFrame, pending: dict[Key, dict], target: str, item_column: str,
            prefix: str = "") -> pd.DataFrame:
    """The table with each row's pending edit (if any) in its action, scale and magnitude."""
    frame = frame.copy()
    actions, scales, magnitudes = [], [], []
    for item in frame[item_column]:
        choice = pending.get((target, prefix + str(item)))
        actions.append(choice["kind"] if choice else NO_ACTION)
        scales.append(choice["scale"] if choice else "")
        magnitudes.append(choice["magnitude"] if choice else "")
    frame["action"] = actions
    frame["scale"] = scales
    frame["magnitude"] = magnitudes
    return frame


def to_actions(pending: dict[Key, dict]) -> list[TuningAction]:
    """The pending edits as tuning actions (scale defaults per kind); a bad number is a
    TuningError naming the cell."""
    actions = []
    for (target, item), choice in pending.items():
        kind = choice["kind"]
        where = f"{item.removeprefix(GROUP_PREFIX)} on {target}"
        scale = parse_number(choice.get("scale"), f"scale of {where}")
        magnitude = parse_number(choice.get("magnitude"), f"magnitude of {where}")
        scale = DEFAULT_SCALE.get(kind) if scale is None else scale
        class_name = ALL_CLASSES if target == ALL_LABEL else target
        scale = scale if kind in DEFAULT_SCALE else None
        if item.startswith(GROUP_PREFIX):
            actions.append(TuningAction.for_group(item.removeprefix(GROUP_PREFIX), kind, class_name,
                                                  scale, magnitude))
        else:
            actions.append(TuningAction(item, kind, class_name, scale, magnitude))  # type: ignore[arg-type]
    return actions


def number_problems(pending: dict[Key, dict]) -> list[str]:
    """Each scale or magnitude cell that is not a number, in words (empty when all are fine)."""
    out = []
    for key, choice in pending.items():
        try:
            to_actions({key: choice})
        except TuningError as err:
            out.append(str(err))
    return out


def describe(pending: dict[Key, dict]) -> list[str]:
    """Each pending edit in words, e.g. 'downtune grass ×0.2 on triangle'."""
    out = []
    for action in to_actions_lenient(pending):
        what = f"the group {action.group}" if action.is_group else action.concept
        scale = f" ×{action.scale:g}" if action.scale is not None else ""
        size = f" (magnitude {action.magnitude:g} where the weight is 0)" if action.magnitude is not None else ""
        target = ALL_LABEL.lower() if action.class_name == ALL_CLASSES else action.class_name
        out.append(f"{action.kind} {what}{scale}{size} on {target}")
    return out


def to_actions_lenient(pending: dict[Key, dict]) -> Iterable[TuningAction]:
    """Like ``to_actions`` but a bad number reads as the default (for describing, not applying)."""
    for key, choice in pending.items():
        try:
            yield from to_actions({key: choice})
        except TuningError:
            yield from to_actions({key: {**choice, "scale": "", "magnitude": ""}})
