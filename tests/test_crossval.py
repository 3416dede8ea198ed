"""Speaker cross-validation: inner folds, the CV objective, its study, and scoring a fold.

The data: a synthetic EmoDB-layout corpus, 9 speakers x 3 utterances of four emotions (chance
BCA 0.25), with 3 outer speaker folds (3 held-out speakers each) and 2 inner folds of the
6 training speakers. The eGeMAPS head learns across speakers here; the tests assert 0.4.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml

from serhpo.corpora.synthetic import synthesize_corpus
from serhpo.crossval import (
    build_cv_objective,
    cv_objective,
    inner_fold_splits,
    outer_fold_split,
    retrain_and_score_fold,
)
from serhpo.errors import UserError
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.study import run_study
from serhpo.hpo.trials_log import TrialsLog
from serhpo.splits import split_manifest
from serhpo.trial import TrialStatus, never_prune

LABELS = ["anger", "happiness", "neutral", "sadness"]
LEARNS = 0.4  # chance 0.25
EGEMAPS = {"lr": 1e-2, "epochs": 15, "batch_size": 8, "maxlen": 16000, "threads": 1}


@pytest.fixture(scope="module")
def split_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cv")
    files = synthesize_corpus(
        "emodb", folder / "raw", n_speakers=9, utterances_per_speaker_label=3, seed=0,
        duration_s=(1.0, 1.5),
    )  # fmt: skip
    files = files[files["label"].isin(LABELS)].reset_index(drop=True)
    manifest = pd.DataFrame(
        {
            "utterance_id": files["path"].map(lambda p: Path(p).stem),
            "path": files["path"],
            "corpus": "synthetic",
            "speaker": files["speaker"].astype(str),
            "label": files["label"],
            "num_samples": (files["duration_s"] * 16000).round().astype(int),
        }
    )
    split = split_manifest(manifest, strategy="speaker", folds=3, seed=0)
    path = folder / "split.csv"
    split.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("features")
    return {
        "seed": 0,
        "target_labels": LABELS,
        "backbone": {"name": "egemaps"},
        "training": EGEMAPS,
        "features": {"cache_dir": str(cache)},
        "split": {"inner_folds": 2},
    }


def _speakers(utterances) -> set[str]:
    return {u.speaker for u in utterances}


def test_inner_folds_never_hold_the_outer_folds_speakers(split_csv: Path) -> None:
    table = pd.read_csv(split_csv, dtype={"speaker": str})
    for outer in range(3):
        held_out = set(table.loc[table["fold"] == outer, "speaker"])
        folds = inner_fold_splits(split_csv, outer_fold=outer, inner_folds=2, seed=0)
        assert len(folds) == 2
        valid = [_speakers(f.parts["valid"]) for f in folds]
        for fold in folds:
            seen = _speakers(fold.parts["train"]) | _speakers(fold.parts["valid"])
            assert not seen & held_out
            assert not _speakers(fold.parts["train"]) & _speakers(fold.parts["valid"])
        # every training speaker is validated on exactly once
        assert sorted(s for v in valid for s in v) == sorted(set(table["speaker"]) - held_out)
        again = inner_fold_splits(split_csv, outer_fold=outer, inner_folds=2, seed=0)
        assert [_speakers(f.parts["valid"]) for f in again] == valid


def test_inner_loso_and_too_many_inner_folds(split_csv: Path) -> None:
    folds = inner_fold_splits(split_csv, outer_fold=0, inner_folds="loso", seed=0)
    assert [len(_speakers(f.parts["valid"])) for f in folds] == [1] * 6
    with pytest.raises(UserError, match="inner_folds is 7 but an outer fold has 6"):
        inner_fold_splits(split_csv, outer_fold=0, inner_folds=7, seed=0)
    with pytest.raises(UserError, match="outer fold 7 is not in"):
        outer_fold_split(split_csv, outer_fold=7)


def test_cv_objective_is_the_mean_of_inner_fold_bcas_and_learns(
    split_csv: Path, config: dict
) -> None:
    objective = build_cv_objective(config, split_csv=split_csv, outer_fold=0)
    caches = {id(fold.cache) for fold in objective.folds}
    assert len(caches) == 1  # one feature cache shared by the inner folds
    reports = []
    result = objective({}, lambda step, score: reports.append((step, score)) or False)
    assert result.status == TrialStatus.COMPLETE
    folds = result.extra["fold_values"]
    assert len(folds) == 2
    assert result.value == pytest.approx(sum(folds) / 2)
    assert [step for step, _ in reports] == [1, 2]
    assert reports[-1][1] == pytest.approx(result.value) and result.history[0] == folds[0]
    assert result.value > LEARNS, result


def test_cv_objective_stops_when_the_study_says_so(split_csv: Path, config: dict) -> None:
    objective = build_cv_objective(config, split_csv=split_csv, outer_fold=1)
    result = objective({}, lambda step, score: True)
    assert result.status == TrialStatus.PRUNED and len(result.extra["fold_values"]) == 1
    assert "inner fold 1 of 2" in result.reason
    failed = objective({"lr": 1e6, "epochs": 2}, never_prune)
    assert failed.status == TrialStatus.FAILED and failed.reason.startswith("inner fold 0:")


def test_a_fold_study_logs_per_fold_scores(split_csv: Path, config: dict, tmp_path: Path) -> None:
    space = SearchSpace.from_config({"lr": {"type": "choice", "choices": [1e-2, 3e-3]}})
    settings = HpoSettings.from_config({"seed": 0, "hpo": {"n_trials": 2}}, engine="random")
    objective = cv_objective(config, split_csv=split_csv, outer_fold=2)
    outcome = run_study(space, objective, settings, out_dir=tmp_path / "study", per_fold=True)
    header = (tmp_path / "study" / "trials.csv").read_text().splitlines()[0].split(",")
    assert header[header.index("value") + 1] == "fold_values"
    for trial in TrialsLog(tmp_path / "study" / "trials.csv", space).read():
        folds = trial.extra["fold_values"]
        assert len(folds) == 2 and trial.value == pytest.approx(sum(folds) / 2, abs=1e-6)
    assert outcome.best["value"] > LEARNS


def test_pruning_margin_spares_trials_near_the_median(split_csv: Path, config: dict) -> None:
    """The study's rule in a CV study: a trial within the margin runs on, one far below stops."""
    from serhpo.hpo.pruning import EarlyStopRule

    pruning = HpoSettings.from_config(
        {"hpo": {"pruning": {"enabled": True, "min_trials": 2}}}, engine="random"
    ).pruning
    rule = EarlyStopRule(replace(pruning, step="inner fold"))
    completed = [(0.70, 0.72), (0.74, 0.73)]
    assert rule.median(1, 0.69, completed) is None  # 0.03 below the median 0.72
    assert "after inner fold 1 by more than 0.05" in rule.median(1, 0.60, completed)


@pytest.mark.parametrize("normalise", ["none", "speaker"])
def test_retraining_a_fold_scores_its_held_out_speakers_once(
    split_csv: Path, config: dict, normalise: str
) -> None:
    best = {"engine": "random", "trial": 0, "value": 0.7, "params": {"normalise": normalise}}
    predictions, summary = retrain_and_score_fold(
        config, best=best, split_csv=split_csv, outer_fold=1, engine="random"
    )
    table = pd.read_csv(split_csv, dtype={"speaker": str, "utterance_id": str})
    held_out = table[table["fold"] == 1]
    assert sorted(predictions["utterance_id"]) == sorted(held_out["utterance_id"])
    assert set(predictions["speaker"]) == set(summary["held_out_speakers"])
    assert not set(summary["training_speakers"]) & set(summary["held_out_speakers"])
    probabilities = predictions[[f"p_{label}" for label in LABELS]]
    assert probabilities.sum(axis=1).round(3).eq(1.0).all()
    assert summary["held_out_bca"] > LEARNS
    assert math.isfinite(summary["inner_bca"]) and yaml.safe_dump(summary)


def test_a_fold_without_a_study_result_says_what_to_run(tmp_path: Path) -> None:
    from serhpo.hpo.study_files import read_best

    (tmp_path / "best.yaml").write_text("engine: optuna\n")
    with pytest.raises(UserError, match=r"lacks \['trial', 'params', 'value', 'metric'\].*hpo_cv"):
        read_best(tmp_path / "best.yaml", rule="hpo_cv")
    with pytest.raises(UserError, match="Run the hpo_cv rule first"):
        read_best(tmp_path / "missing.yaml", rule="hpo_cv")
    best = {"engine": "optuna", "trial": 3, "params": {"lr": 0.1}, "value": 0.6, "metric": "bca"}
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(best))
    assert read_best(tmp_path / "best.yaml")["value"] == 0.6


def test_a_fold_study_never_reads_its_held_out_speakers(
    split_csv: Path, config: dict, tmp_path: Path
) -> None:
    table = pd.read_csv(split_csv, dtype={"speaker": str})
    table.loc[table["fold"] == 0, "path"] = "never/read.wav"  # the held-out audio is gone
    table.to_csv(tmp_path / "split.csv", index=False)
    objective = build_cv_objective(config, split_csv=tmp_path / "split.csv", outer_fold=0)
    assert objective({"epochs": 2}, never_prune).status == TrialStatus.COMPLETE
    with pytest.raises(UserError, match="never/read.wav"):
        build_cv_objective(config, split_csv=tmp_path / "split.csv", outer_fold=1)
