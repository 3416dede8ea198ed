"""BCA, accuracy, macro-F1 and the confusion matrix."""

from __future__ import annotations

import pytest

from serhpo.metrics import balanced_accuracy, classification_scores


def test_bca_is_the_mean_recall_not_the_accuracy():
    # 8 of class 0 all right, 2 of class 1 all wrong: accuracy 0.8, BCA 0.5
    y_true = [0] * 8 + [1] * 2
    y_pred = [0] * 10
    scores = classification_scores(y_true, y_pred, labels=["neutral", "anger"])
    assert scores["accuracy"] == pytest.approx(0.8)
    assert scores["bca"] == pytest.approx(0.5)
    assert scores["confusion"] == [[8, 0], [2, 0]]
    assert scores["support"] == [8, 2]


def test_classes_absent_from_the_truth_do_not_count():
    # class 2 is never true; predicting it is an error, not a zero-recall class
    assert balanced_accuracy([0, 0, 1, 1], [0, 2, 1, 1]) == pytest.approx(0.75)


def test_macro_f1_averages_the_present_classes():
    scores = classification_scores([0, 0, 1, 1], [0, 0, 1, 0], labels=["a", "b", "c"])
    # class a: P 2/3 R 1 -> 0.8; class b: P 1 R 0.5 -> 2/3
    assert scores["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert len(scores["confusion"]) == 3
