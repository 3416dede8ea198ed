from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from serhpo.errors import UserError
from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, SearchSpace
from serhpo.hpo.trials_log import (
    TrialsLog,
    best_trial,
    file_lock,
    format_history,
    parse_history,
    write_best,
)
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(DEFAULT_SEARCH_SPACE)
PARAMS = {"lr": 2.123456789e-05, "epochs": 4, "unfreeze": 1, "maxlen": 64000}


def trial(value: float, status: TrialStatus = TrialStatus.COMPLETE, **more) -> FinishedTrial:
    return FinishedTrial(
        trial=-1,
        params=dict(PARAMS),
        value=value,
        status=status,
        trial_seconds=1.5,
        history=(0.3, value),
        cumulative_seconds=10.0,
        **more,
    )


def test_columns_are_as_specified(tmp_path: Path) -> None:
    log = TrialsLog(tmp_path / "trials.csv", SPACE)
    log.append(trial(0.8))
    header = (tmp_path / "trials.csv").read_text().splitlines()[0].split(",")
    assert header[:9] == [
        "trial",
        "param_lr",
        "param_epochs",
        "param_unfreeze",
        "param_maxlen",
        "value",
        "trial_seconds",
        "cumulative_seconds",
        "status",
    ]
    assert header[9:11] == ["reason", "history"]


def test_rows_round_trip_exactly_and_are_numbered_in_order(tmp_path: Path) -> None:
    log = TrialsLog(tmp_path / "trials.csv", SPACE)
    first = log.append(trial(0.8, extra={"epochs_run": 2}, engine_trial=5))
    second = log.append(
        trial(math.nan, TrialStatus.FAILED, reason="ValueError: loss is nan,\nat step 3")
    )
    assert (first.trial, second.trial) == (0, 1)
    read = log.read()
    assert read[0] == first
    assert read[0].params == PARAMS  # floats written with repr survive exactly
    assert read[1].status == TrialStatus.FAILED and math.isnan(read[1].value)
    assert read[1].reason == "ValueError: loss is nan, at step 3"  # one line


def test_a_log_of_another_space_is_refused(tmp_path: Path) -> None:
    TrialsLog(tmp_path / "trials.csv", SPACE).append(trial(0.8))
    other = SearchSpace.from_config({"lr": {"type": "loguniform", "low": 1e-6, "high": 1e-3}})
    with pytest.raises(UserError, match="search space changed"):
        TrialsLog(tmp_path / "trials.csv", other).read()


def test_a_damaged_row_is_reported_with_its_line(tmp_path: Path) -> None:
    log = TrialsLog(tmp_path / "trials.csv", SPACE)
    log.append(trial(0.8))
    path = tmp_path / "trials.csv"
    path.write_text(path.read_text().replace(",64000,", ",50000,"))
    with pytest.raises(UserError, match="line 2"):
        log.read()


def test_history_is_compact_and_parses_back() -> None:
    assert format_history([1 / 7, 0.5]) == "0.142857;0.5"
    assert parse_history("0.142857;0.5") == (0.142857, 0.5)
    assert parse_history("") == ()


def test_best_prefers_complete_trials_and_writes_the_metric(tmp_path: Path) -> None:
    trials = [
        FinishedTrial(0, PARAMS, 0.7, TrialStatus.COMPLETE, 1.0, cumulative_seconds=1.0),
        FinishedTrial(1, PARAMS, 0.95, TrialStatus.PRUNED, 1.0, cumulative_seconds=2.0),
        FinishedTrial(2, PARAMS, math.nan, TrialStatus.FAILED, 1.0, cumulative_seconds=3.0),
        FinishedTrial(3, PARAMS, 0.9, TrialStatus.COMPLETE, 1.0, cumulative_seconds=4.0),
    ]
    assert best_trial(trials).trial == 3
    assert best_trial(trials[1:3]).trial == 1
    written = write_best(tmp_path / "best.yaml", engine="optuna", trials=trials)
    assert yaml.safe_load((tmp_path / "best.yaml").read_text()) == written
    assert written["engine"] == "optuna" and written["metric"] == "valid_bca"
    assert written["trial"] == 3 and written["value"] == 0.9 and written["params"] == PARAMS
    assert written["cumulative_seconds"] == 4.0
    with pytest.raises(UserError, match="none of the 1 trials"):
        write_best(tmp_path / "best.yaml", engine="ax", trials=trials[2:3])


def test_the_lock_is_reentrant_across_sequential_uses(tmp_path: Path) -> None:
    with file_lock(tmp_path / "state" / "lock"):
        pass
    with file_lock(tmp_path / "state" / "lock"):
        assert (tmp_path / "state" / "lock").exists()


def test_a_cross_validation_study_keeps_each_inner_folds_score(tmp_path: Path) -> None:
    log = TrialsLog(tmp_path / "trials.csv", SPACE, per_fold=True)
    log.append(trial(0.6, extra={"fold_values": [0.5, 0.7], "epochs_run": 8}))
    log.append(trial(math.nan, TrialStatus.FAILED, reason="inner fold 0: diverged"))
    header = (tmp_path / "trials.csv").read_text().splitlines()[0].split(",")
    assert header[header.index("value") + 1] == "fold_values"
    first, failed = TrialsLog(tmp_path / "trials.csv", SPACE).read()  # either kind is read
    assert first.extra == {"fold_values": [0.5, 0.7], "epochs_run": 8}
    assert "fold_values" not in failed.extra
    plain = TrialsLog(tmp_path / "plain.csv", SPACE)
    plain.append(trial(0.8))
    assert "fold_values" not in (tmp_path / "plain.csv").read_text()
    assert TrialsLog(tmp_path / "plain.csv", SPACE, per_fold=True).read()[0].value == 0.8
