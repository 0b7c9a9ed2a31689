"""Altair charts as pure functions of data: each answers one question a user has, with a title,
axis labels and tooltips, and is tested through ``chart.to_dict()`` without a browser."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd


def class_counts(labels: np.ndarray, class_names: Sequence[str], title: str = "Images per class") -> alt.Chart:
    """How balanced is the dataset?"""
    counts = np.bincount(labels[labels >= 0], minlength=len(class_names))
    frame = pd.DataFrame({"class": list(class_names), "images": counts})
    return alt.Chart(frame, title=title).mark_bar().encode(
        x=alt.X("class:N", sort=list(class_names), title="Class"),
        y=alt.Y("images:Q", title="Images"),
        tooltip=["class", "images"],
    )


def confidence_histogram(P: np.ndarray, title: str = "Teacher confidence") -> alt.Chart:
    """How sure is the teacher? Top-1 probability per image."""
    frame = pd.DataFrame({"confidence": P.max(axis=1)})
    return alt.Chart(frame, title=title).mark_bar().encode(
        x=alt.X("confidence:Q", bin=alt.Bin(maxbins=20), title="Top-1 probability"),
        y=alt.Y("count():Q", title="Images"),
        tooltip=[alt.Tooltip("count():Q", title="images")],
    )


def class_concept_heatmap(means: np.ndarray, class_names: Sequence[str], concepts: Sequence[str],
                          title: str = "Mean concept score per class") -> alt.Chart:
    """Which concepts go with which class?"""
    rows = [{"class": c, "concept": k, "score": float(means[i, j])}
            for i, c in enumerate(class_names) for j, k in enumerate(concepts)]
    return alt.Chart(pd.DataFrame(rows), title=title).mark_rect().encode(
        x=alt.X("concept:N", sort=list(concepts), title="Concept"),
        y=alt.Y("class:N", sort=list(class_names), title="Class"),
        color=alt.Color("score:Q", title="Mean score", scale=alt.Scale(scheme="viridis")),
        tooltip=["class", "concept", alt.Tooltip("score:Q", format=".3f")],
    )


def per_class_bars(rows: list[dict], value: str, title: str, axis_title: str) -> alt.Chart:
    """A per-class metric (fidelity as F1, accuracy …) as bars in [0, 1]."""
    frame = pd.DataFrame([{"class": r["class"], value: r.get(value)} for r in rows]).dropna()
    return alt.Chart(frame, title=title).mark_bar().encode(
        x=alt.X("class:N", sort=[r["class"] for r in rows], title="Class"),
        y=alt.Y(f"{value}:Q", title=axis_title, scale=alt.Scale(domain=[0, 1])),
        tooltip=["class", alt.Tooltip(f"{value}:Q", format=".3f")],
    )


def confusion_heatmap(matrix: np.ndarray, class_names: Sequence[str],
                      title: str = "Student vs teacher", select: bool = False) -> alt.Chart:
    """Where does the student disagree with the teacher? Rows: teacher, columns: student."""
    rows = [{"teacher": t, "student": s, "images": int(matrix[i, j])}
            for i, t in enumerate(class_names) for j, s in enumerate(class_names)]
    base = alt.Chart(pd.DataFrame(rows), title=title).encode(
        x=alt.X("student:N", sort=list(class_names), title="Student's class"),
        y=alt.Y("teacher:N", sort=list(class_names), title="Teacher's class"),
    )
    rects = base.mark_rect().encode(color=alt.Color("images:Q", title="Images", scale=alt.Scale(scheme="blues")),
                                    tooltip=["teacher", "student", "images"])
    if select:  # a click picks one cell (teacher, student); the page lists its images
        rects = rects.add_params(alt.selection_point(name="cell", fields=["teacher", "student"]))
    text = base.mark_text(baseline="middle").encode(text="images:Q")
    return rects + text


def influence_bars(weights: np.ndarray, concepts: Sequence[str], class_name: str, top: int = 12,
                   spread: np.ndarray | None = None, select: bool = False) -> alt.Chart:
    """Which concepts push this class up or down? Member-mean weights, largest magnitudes."""
    order = np.argsort(-np.abs(weights))[:top]
    frame = pd.DataFrame({
        "concept": [concepts[j] for j in order],
        "weight": [float(weights[j]) for j in order],
        "spread": [float(spread[j]) if spread is not None else 0.0 for j in order],
    })
    frame["direction"] = np.where(frame["weight"] >= 0, "raises", "lowers")
    chart = alt.Chart(frame, title=f"Concept influence on “{class_name}”").mark_bar().encode(
        x=alt.X("weight:Q", title="Weight (standardized concept)"),
        y=alt.Y("concept:N", sort=list(frame["concept"]), title="Concept"),
        color=alt.Color("direction:N", title="Effect",
                        scale=alt.Scale(domain=["raises", "lowers"], range=["#3b6fd8", "#d8573b"])),
        tooltip=["concept", alt.Tooltip("weight:Q", format=".3f"),
                 alt.Tooltip("spread:Q", format=".3f", title="spread across members")],
    )
    if select:  # a click picks a concept; the page shows it across classes and its top images
        chart = chart.add_params(alt.selection_point(name="concept", fields=["concept"]))
    return chart


def weight_across_classes(weights: np.ndarray, class_names: Sequence[str], concept: str) -> alt.Chart:
    """Which classes does this concept push up or down? Its member-mean weight in every class."""
    frame = pd.DataFrame({"class": list(class_names), "weight": [float(w) for w in weights]})
    frame["direction"] = np.where(frame["weight"] >= 0, "raises", "lowers")
    return alt.Chart(frame, title=f"“{concept}” in every class").mark_bar().encode(
        x=alt.X("class:N", sort=list(class_names), title="Class"),
        y=alt.Y("weight:Q", title="Weight"),
        color=alt.Color("direction:N", title="Effect",
                        scale=alt.Scale(domain=["raises", "lowers"], range=["#3b6fd8", "#d8573b"])),
        tooltip=["class", alt.Tooltip("weight:Q", format=".3f")],
    )


def contributions_bars(contrib: np.ndarray, concepts: Sequence[str], title: str, top: int = 8) -> alt.Chart:
    """Why did the student pick this class for this image? Top contributions ``w * x_std``."""
    order = np.argsort(-np.abs(contrib))[:top]
    frame = pd.DataFrame({"concept": [concepts[j] for j in order],
                          "contribution": [float(contrib[j]) for j in order]})
    return alt.Chart(frame, title=title).mark_bar().encode(
        x=alt.X("contribution:Q", title="Contribution to the class score"),
        y=alt.Y("concept:N", sort=list(frame["concept"]), title="Concept"),
        color=alt.condition("datum.contribution >= 0", alt.value("#3b6fd8"), alt.value("#d8573b")),
        tooltip=["concept", alt.Tooltip("contribution:Q", format=".3f")],
    )


def loss_curves(history: list[dict], title: str = "Training", agreement: str = "Agreement with the teacher"
                ) -> alt.LayerChart:
    """Loss (left axis) and agreement or accuracy (right axis, 0–100%) by whole epoch: one scale
    would flatten a 0–1 rate under a loss of 5."""
    frame = pd.DataFrame(history).melt("epoch", var_name="metric", value_name="value")
    is_rate = frame["metric"].str.contains("agreement|acc")
    x = alt.X("epoch:Q", title="Epoch", axis=alt.Axis(tickMinStep=1, format="d"))
    color = alt.Color("metric:N", title="Metric")
    tooltip = ["epoch", "metric", alt.Tooltip("value:Q", format=".3f")]
    loss = alt.Chart(frame[~is_rate]).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title="Loss", axis=alt.Axis(orient="left")), color=color, tooltip=tooltip)
    rate = alt.Chart(frame[is_rate]).mark_line(point=True, strokeDash=[4, 2]).encode(
        x=x, y=alt.Y("value:Q", title=agreement, scale=alt.Scale(domain=[0, 1]),
                     axis=alt.Axis(format="%", orient="right")), color=color, tooltip=tooltip)
    return alt.layer(loss, rate, title=title).resolve_scale(y="independent")


def nec_path(path: list[dict], chosen: float | None = None) -> alt.LayerChart:
    """How much fidelity does a readable student cost? Fidelity against NEC along the λ path."""
    frame = pd.DataFrame(path).sort_values("nec")
    x = alt.X("nec:Q", title="Concepts per class (NEC)")
    line = alt.Chart(frame).mark_line(point=True).encode(
        x=x, y=alt.Y("fidelity:Q", title="Fidelity (agreement with the teacher)", axis=alt.Axis(format="%"),
                     scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("nec:Q", format=".1f", title="NEC"), alt.Tooltip("fidelity:Q", format=".1%"),
                 alt.Tooltip("alpha:Q", format=".3g", title="λ")])
    layers = [line]
    if chosen is not None:
        layers.append(alt.Chart(pd.DataFrame({"nec": [chosen]})).mark_rule(strokeDash=[4, 2]).encode(
            x="nec:Q", tooltip=[alt.Tooltip("nec:Q", format=".1f", title="this student")]))
    return alt.layer(*layers, title="Fidelity against concepts per class")


def overlay(image: np.ndarray, score_map: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend a [g, g] score map (upsampled, red = high) over an RGB image: uint8 [H, W, 3]."""
    h, w = image.shape[:2]
    g = score_map.shape[0]
    lo, hi = float(score_map.min()), float(score_map.max())
    norm = (score_map - lo) / (hi - lo) if hi > lo else np.zeros_like(score_map)
    up = np.kron(norm, np.ones((int(np.ceil(h / g)), int(np.ceil(w / g)))))[:h, :w]
    heat = np.stack([up, 0.2 * np.ones_like(up), 1 - up], axis=-1) * 255
    return (image * (1 - alpha * up[..., None]) + heat * alpha * up[..., None]).clip(0, 255).astype(np.uint8)
