"""Classification scores: balanced class accuracy (BCA), accuracy, macro-F1, confusion.

BCA is scikit-learn's ``balanced_accuracy_score``: the mean recall over the classes
present in the true labels, i.e. the unweighted average recall (UAR) of SER papers.

Example:
    >>> scores = classification_scores([0, 0, 1, 2], [0, 1, 1, 2], labels=["a", "b", "c"])
    >>> round(scores["bca"], 3), scores["accuracy"]
    (0.833, 0.75)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score


def balanced_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Balanced class accuracy (mean per-class recall over the classes in ``y_true``).

    Example:
        >>> balanced_accuracy([0, 0, 1, 1], [0, 0, 0, 0])
        0.5
    """
    with warnings.catch_warnings():
        # predictions of a class absent from y_true are fine: they count as errors
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(np.asarray(y_true), np.asarray(y_pred)))


def classification_scores(
    y_true: Sequence[int], y_pred: Sequence[int], *, labels: Sequence[str]
) -> dict[str, Any]:
    """BCA, accuracy, macro-F1 and the confusion matrix of integer class predictions.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        labels: class names; index ``i`` is ``labels[i]``.

    Returns:
        ``{"bca", "accuracy", "macro_f1", "labels", "confusion", "support"}``; the
        confusion matrix has true classes as rows and predictions as columns, in
        ``labels`` order; macro-F1 averages over the classes present in ``y_true``.

    Example:
        >>> classification_scores([0, 1], [0, 0], labels=["a", "b"])["confusion"]
        [[1, 0], [1, 0]]
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    indices = list(range(len(labels)))
    present = sorted(set(y_true.tolist()))
    return {
        "bca": balanced_accuracy(y_true, y_pred),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "labels": list(labels),
        "confusion": confusion_matrix(y_true, y_pred, labels=indices).tolist(),
        "support": np.bincount(y_true, minlength=len(labels)).tolist(),
    }
