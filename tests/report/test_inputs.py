"""Reading and checking the report's inputs: config keys, trials.csv, best.yaml, eval JSONs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from serhpo.errors import UserError
from serhpo.report.inputs import ReportSettings, read_evaluation, read_study


def test_settings_default_to_the_paper_when_config_is_silent():
    settings = ReportSettings.from_config({})
    assert settings.thresholds == (0.8, 0.9)
    assert settings.paper_figures is True
    assert settings.protocol == "stratified"
    assert settings.engines == ("ax", "hyperopt", "optuna", "grid")
    assert settings.log_params == frozenset({"lr"})
    assert settings.n_classes == 7


def test_settings_read_every_key_they_use():
    settings = ReportSettings.from_config(
        {
            "report": {"thresholds": [0.9, 0.75, 0.9], "paper_figures": False},
            "split": {"strategy": "speaker"},
            "hpo": {"engines": ["random"]},
            "corpora": {"emodb": {"role": "tune"}, "cremad": {"role": "zero_shot"}},
            "search_space": {
                "wd": {"type": "loguniform", "low": 1e-6, "high": 1e-2},
                "units": {"type": "int", "low": 8, "high": 64},
            },
            "target_labels": ["a", "b", "c", "d"],
        }
    )
    assert settings.thresholds == (0.75, 0.9)
    assert settings.paper_figures is False
    assert settings.protocol == "speaker"
    assert settings.engines == ("random",)
    assert settings.corpora == ("emodb", "cremad")
    assert settings.tune_corpora == ("emodb",)
    assert settings.param_order == ("wd", "units")
    assert settings.log_params == frozenset({"wd"})
    assert settings.n_classes == 4


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"report": {"thresholds": [1.5]}}, "report.thresholds"),
        ({"report": {"thresholds": []}}, "report.thresholds"),
        ({"report": {"thresholds": "0.8"}}, "report.thresholds"),
        ({"report": {"paper_figures": "yes"}}, "report.paper_figures"),
        ({"report": {"threshold": [0.8]}}, "unknown key"),
        ({"split": {"strategy": "random"}}, "split.strategy"),
    ],
)
def test_settings_reject_bad_values_naming_the_key(config, key):
    with pytest.raises(UserError, match=key):
        ReportSettings.from_config(config)


def test_a_study_is_named_by_its_folder_and_reads_best_yaml_when_present(
    tmp_path, write_trials_csv
):
    with_best = write_trials_csv(tmp_path / "hpo" / "optuna" / "trials.csv")
    best = {"engine": "optuna", "trial": 1, "params": {"lr": 1e-5}, "value": 0.5, "metric": "bca"}
    (with_best.parent / "best.yaml").write_text(yaml.safe_dump(best))
    without = write_trials_csv(tmp_path / "hpo" / "grid" / "trials.csv")
    assert read_study(with_best).engine == "optuna"
    assert read_study(with_best).best == best
    assert read_study(without).best is None
    assert read_study(with_best).param_names == ["lr"]


def _eval_json(path: Path, **changes) -> Path:
    data = {
        "model": "ax",
        "corpus": "emodb",
        "protocol": "speaker",
        "part": "test",
        "zero_shot": False,
        "n": 4,
        "labels": ["a", "b"],
        "bca": 0.75,
        "bca_ci95": [0.5, 1.0],
        "accuracy": 0.75,
        "macro_f1": 0.73,
        "confusion": [[2, 0], [1, 1]],
    }
    data.update(changes)
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def test_an_evaluation_is_read_whole(tmp_path):
    evaluation = read_evaluation(_eval_json(tmp_path / "e.json"))
    assert (evaluation.model, evaluation.corpus, evaluation.part) == ("ax", "emodb", "test")
    assert evaluation.bca_ci95 == (0.5, 1.0)
    assert evaluation.confusion.tolist() == [[2, 0], [1, 1]]


def test_an_evaluation_without_optional_scores_gets_nan(tmp_path):
    evaluation = read_evaluation(_eval_json(tmp_path / "e.json", bca_ci95=None, accuracy=None))
    assert math.isnan(evaluation.bca_ci95[0]) and math.isnan(evaluation.accuracy)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bca": None}, "missing"),
        ({"confusion": [[1, 2, 3]]}, "shape"),
        ({"model": "../ax"}, "plain name"),
    ],
)
def test_broken_evaluations_are_refused(tmp_path, changes, message):
    with pytest.raises(UserError, match=message):
        read_evaluation(_eval_json(tmp_path / "e.json", **changes))
