"""How well a student mimics its teacher (fidelity) and how right it is (accuracy, where labels exist)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from infi.errors import InputError


def fidelity(student_proba: np.ndarray, teacher_proba: np.ndarray) -> float:
    """Share of samples where the student's top-1 class equals the teacher's."""
    s, t = np.asarray(student_proba), np.asarray(teacher_proba)
    if s.shape != t.shape:
        raise InputError(f"student and teacher probabilities differ in shape: {s.shape} vs {t.shape}")
    return float((s.argmax(1) == t.argmax(1)).mean()) if len(s) else float("nan")


def accuracy(proba: np.ndarray, labels: np.ndarray | None) -> float | None:
    """Top-1 accuracy against ground-truth labels; None when there are none."""
    if labels is None:
        return None
    labels = np.asarray(labels)
    known = labels >= 0  # -1 marks an unlabelled image
    if not known.any():
        return None
    return float((np.asarray(proba)[known].argmax(1) == labels[known]).mean())


def per_class_accuracy(proba: np.ndarray, labels: np.ndarray, n_classes: int) -> list[float | None]:
    """Accuracy within each true class (None for a class with no labelled image)."""
    pred, labels = np.asarray(proba).argmax(1), np.asarray(labels)
    return [float((pred[labels == c] == c).mean()) if (labels == c).any() else None for c in range(n_classes)]


def per_class(student_proba: np.ndarray, teacher_proba: np.ndarray,
              class_names: Sequence[str], labels: np.ndarray | None = None) -> list[dict]:
    """Per class: precision, recall and F1 of the student against the teacher's top-1 (fidelity
    view), the class's support, and its accuracy against labels where they exist."""
    s, t = np.asarray(student_proba).argmax(1), np.asarray(teacher_proba).argmax(1)
    classes = np.arange(len(class_names))
    p, r, f, support = precision_recall_fscore_support(t, s, labels=classes, zero_division=0)
    rows = []
    for c, name in enumerate(class_names):
        row = {"class": name, "precision": float(p[c]), "recall": float(r[c]), "f1": float(f[c]),
               "support": int(support[c])}
        if labels is not None:
            mask = np.asarray(labels) == c
            row["accuracy"] = float((s[mask] == c).mean()) if mask.any() else None
        rows.append(row)
    return rows


def student_teacher_confusion(student_proba: np.ndarray, teacher_proba: np.ndarray,
                              n_classes: int) -> np.ndarray:
    """Counts [C, C]: rows are the teacher's class, columns the student's."""
    return confusion_matrix(np.asarray(teacher_proba).argmax(1), np.asarray(student_proba).argmax(1),
                            labels=np.arange(n_classes))


def summary(student_proba: np.ndarray, teacher_proba: np.ndarray, class_names: Sequence[str],
            labels: np.ndarray | None = None) -> dict:
    """Fidelity, accuracy and the per-class table in one JSON-ready dict."""
    return {
        "fidelity": fidelity(student_proba, teacher_proba),
        "accuracy": accuracy(student_proba, labels),
        "teacher_accuracy": accuracy(teacher_proba, labels),
        "per_class": per_class(student_proba, teacher_proba, class_names, labels),
        "n": int(len(student_proba)),
    }
