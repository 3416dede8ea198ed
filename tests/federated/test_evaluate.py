from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from serhpo.errors import UserError
from serhpo.federated.evaluate import select_configurations, trial_summary, write_json
from serhpo.hpo.engine import FinishedTrial
from serhpo.trial import TrialStatus


def trial(number: int, value: float, cpu: float | None, status=TrialStatus.COMPLETE):
    extra = {} if cpu is None else {"cpu_seconds": cpu}
    return FinishedTrial(number, {"lr": 0.1 * (number + 1)}, value, status, 9.0, extra=extra)


def test_the_cheapest_near_best_trial_is_chosen_within_the_margin() -> None:
    trials = [
        trial(0, 0.70, 1.0),
        trial(1, 0.80, 50.0),
        trial(2, 0.792, 20.0),  # within 0.01 of 0.80: cheaper
        trial(3, 0.789, 2.0),  # 0.011 below: outside the margin
        trial(4, 0.95, 0.1, TrialStatus.PRUNED),  # partial scores do not count
        trial(5, math.nan, 0.1, TrialStatus.FAILED),
        trial(6, 0.90, None),  # no CPU time reported: cannot be placed
    ]
    chosen = select_configurations(trials, margin=0.01)
    assert (chosen["best"].trial, chosen["efficient"].trial) == (1, 2)
    wider = select_configurations(trials, margin=0.02)
    assert wider["efficient"].trial == 3
    assert select_configurations(trials, margin=0.0)["efficient"].trial == 1


def test_ties_in_bca_go_to_the_cheaper_trial() -> None:
    chosen = select_configurations([trial(0, 0.8, 9.0), trial(1, 0.8, 3.0)], margin=0.0)
    assert chosen["best"].trial == chosen["efficient"].trial == 1


def test_no_usable_trial_says_where_to_look() -> None:
    with pytest.raises(UserError, match="trials.csv"):
        select_configurations([trial(0, math.nan, 1.0, TrialStatus.FAILED)])


def test_a_summary_names_the_trial_by_its_number_in_trials_csv(tmp_path: Path) -> None:
    summary = trial_summary(trial(4, 0.8, 2.5))
    assert summary["trial"] == 4 and "trials_needed" not in summary
    assert summary["cpu_seconds"] == 2.5
    write_json({"a": [math.nan, 1.0], "b": {"c": math.inf}}, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [None, 1.0], "b": {"c": None}}
