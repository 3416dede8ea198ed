"""A study's files read without its engines: best.yaml and trials.csv as a table."""

from __future__ import annotations

import math

import pytest
import yaml

from serhpo.errors import UserError
from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.study_files import read_best, read_trials_table
from serhpo.hpo.trials_log import write_best
from serhpo.trial import TrialStatus


def test_trials_are_read_with_numbers_and_lower_case_status(tmp_path, write_trials_csv):
    path = write_trials_csv(tmp_path / "t.csv", status=["Complete", " FAILED"])
    trials = read_trials_table(path)
    assert trials["status"].tolist() == ["complete", "failed"]
    assert trials["trial"].dtype.kind == "i"
    assert math.isnan(trials["value"].iloc[1])


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"cumulative_seconds": None}, "cumulative_seconds"),
        ({"status": ["complete", "crashed"]}, "crashed"),
        ({"trial": [3, 3]}, "more than once"),
        ({"value": [0.5, "high"]}, "not a number"),
    ],
)
def test_broken_trials_are_refused_with_what_was_found(
    tmp_path, write_trials_csv, columns, message
):
    path = write_trials_csv(tmp_path / "t.csv", **columns)
    with pytest.raises(UserError, match=message):
        read_trials_table(path)


def test_the_best_yaml_write_best_writes_is_read_back_and_a_broken_one_is_named(tmp_path):
    path = tmp_path / "best.yaml"
    done = FinishedTrial(0, {"lr": 1e-4}, 0.6, TrialStatus.COMPLETE, cumulative_seconds=3.0)
    written = write_best(path, engine="grid", trials=[done])
    assert read_best(path) == written
    assert read_best(tmp_path / "none.yaml", missing_ok=True) is None
    with pytest.raises(UserError, match="Run the fl_hpo rule first"):
        read_best(tmp_path / "none.yaml", rule="fl_hpo")
    path.write_text("engine: [grid\n")
    with pytest.raises(UserError, match="not valid YAML"):
        read_best(path)
    path.write_text(yaml.safe_dump({"engine": "grid", "params": {}}))
    with pytest.raises(UserError, match=r"lacks \['trial', 'value', 'metric'\]"):
        read_best(path)
