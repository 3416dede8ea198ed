"""Pooling the outer folds: the speaker (cluster) bootstrap and the pooled tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serhpo.cvpool import (
    pool_predictions,
    protocol_name,
    speaker_bootstrap_bca,
    speaker_bootstrap_scores,
)
from serhpo.errors import UserError
from serhpo.evaluation import bootstrap_bca, bootstrap_scores
from serhpo.metrics import balanced_accuracy


def test_the_speaker_bootstrap_keeps_each_speakers_utterances_together() -> None:
    # Speaker a is always right, speaker b always wrong (two classes, 10 utterances each).
    truth = [0, 1] * 5 + [0, 1] * 5
    predicted = [0, 1] * 5 + [1, 0] * 5
    speakers = ["a"] * 10 + ["b"] * 10
    scores = speaker_bootstrap_scores(truth, predicted, speakers, resamples=200, seed=0)
    # Only {a, a}, {a, b} and {b, b} can be drawn: whole speakers, never a part of one.
    assert set(np.round(scores, 6)) == {0.0, 0.5, 1.0}
    by_utterance = bootstrap_scores(truth, predicted, resamples=200, seed=0)
    assert len(set(np.round(by_utterance, 6))) > 5


def test_alike_utterances_of_a_speaker_widen_the_interval() -> None:
    """Ten speakers, each right on all or on none of its 20 utterances: utterances are not
    independent, and the interval over speakers is much wider than the one over utterances."""
    rng = np.random.default_rng(1)
    truth, predicted, speakers = [], [], []
    for speaker in range(10):
        labels = rng.integers(0, 4, size=20)
        right = speaker % 3 != 0  # 4 of 10 speakers entirely wrong
        truth += labels.tolist()
        predicted += (labels if right else (labels + 1) % 4).tolist()
        speakers += [f"s{speaker}"] * 20
    low, high = speaker_bootstrap_bca(truth, predicted, speakers, resamples=1000, seed=0)
    u_low, u_high = bootstrap_bca(truth, predicted, resamples=1000, seed=0)
    point = balanced_accuracy(truth, predicted)
    assert low < point < high and u_low < point < u_high
    assert (high - low) > 2 * (u_high - u_low)


def _fold_predictions() -> pd.DataFrame:
    rows = []
    for fold, held_out in enumerate([["03", "08"], ["09", "10"]]):
        for speaker in held_out:
            for index, label in enumerate(["anger", "sadness", "neutral"] * 2):
                predicted = label if (index + int(speaker)) % 3 else "anger"
                rows.append(
                    {"engine": "optuna", "fold": fold, "utterance_id": f"{speaker}_{index}",
                     "speaker": speaker, "label": label, "predicted": predicted}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_pooling_scores_every_held_out_prediction_once() -> None:
    predictions = _fold_predictions()
    summaries = [
        {"fold": 1, "trial": 4, "inner_bca": 0.6, "held_out_bca": 0.5,
         "held_out_speakers": ["09", "10"], "params": {"lr": 0.01}},
        {"fold": 0, "trial": 2, "inner_bca": 0.7, "held_out_bca": 0.6,
         "held_out_speakers": ["03", "08"], "params": {"lr": 0.001}},
    ]  # fmt: skip
    labels = ["anger", "boredom", "sadness", "neutral"]
    pooled, per_speaker, configs = pool_predictions(
        predictions, summaries, engine="optuna", folds=2, labels=labels, resamples=200
    )
    index = {label: i for i, label in enumerate(labels)}
    expected = balanced_accuracy(
        predictions["label"].map(index), predictions["predicted"].map(index)
    )
    assert pooled["bca"] == pytest.approx(expected)
    assert pooled["protocol"] == "speaker CV, 2 folds" and pooled["n_speakers"] == 4
    assert pooled["n"] == 24 and "labels absent from the truth: ['boredom']" in pooled["notes"][-1]
    low, high = pooled["bca_ci95"]
    assert low <= pooled["bca"] <= high
    assert list(per_speaker["speaker"]) == ["03", "08", "09", "10"]
    assert list(configs["fold"]) == [0, 1] and list(configs["param_lr"]) == [0.001, 0.01]
    assert set(pooled["fold_bca"]) == {0, 1}


def test_a_speaker_held_out_twice_is_refused() -> None:
    predictions = _fold_predictions()
    predictions.loc[predictions["speaker"] == "09", "fold"] = [0, 1] * 3
    with pytest.raises(UserError, match=r"\['09'\] are held out in more than one outer fold"):
        pool_predictions(predictions, [], engine="optuna", folds=2)


def test_protocol_names() -> None:
    assert protocol_name(5) == "speaker CV, 5 folds"
    assert protocol_name("loso") == "leave-one-speaker-out"
