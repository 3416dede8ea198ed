from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from serhpo.federated import summary
from serhpo.federated.summary import joint_front, summary_markdown, summary_table
from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.trials_log import TrialsLog
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(
    {
        "lr": {"type": "choice", "choices": [0.1, 0.01]},
        "rounds": {"type": "choice", "choices": [5, 10]},
    }
)


def trial(number: int, value: float, cpu: float, lr: float = 0.1, rounds: int = 5):
    return FinishedTrial(
        number, {"lr": lr, "rounds": rounds}, value, TrialStatus.COMPLETE, 10.0,
        extra={"cpu_seconds": cpu},
    )  # fmt: skip


STUDIES = {
    "grid": [trial(0, 0.60, 1.0), trial(1, 0.70, 8.0, rounds=10), trial(2, 0.695, 4.0, 0.01)],
    "optuna": [trial(0, 0.65, 0.5, 0.01), trial(1, 0.70, 6.0, 0.01, 10)],
}


def test_the_summary_has_each_engines_best_and_cheapest_near_best() -> None:
    table = summary_table(STUDIES, margin=0.01).set_index("engine")
    assert table.loc["grid", "best_valid_bca"] == 0.70
    assert table.loc["grid", "best_trial"] == 1
    assert table.loc["grid", "efficient_cpu_seconds"] == 4.0
    assert table.loc["grid", "efficient_trial"] == 2
    assert table.loc["grid", "cpu_saving"] == 2.0
    assert table.loc["optuna", "best_cpu_seconds"] == 6.0
    assert math.isnan(table.loc["optuna", "best_test_bca"])  # no evaluation given
    text = summary_markdown(table.reset_index(), margin=0.01, corpus="emodb", protocol="speaker")
    assert "| grid | 3 | 0.700 | 8 | 1 | — | 0.695 | 4 | 2 | — | 2.0x |" in text


def test_the_joint_front_keeps_only_trials_no_engine_beats() -> None:
    front = joint_front(STUDIES)
    assert list(zip(front["engine"], front["trial"], strict=True)) == [
        ("optuna", 0), ("grid", 2), ("optuna", 1),
    ]  # fmt: skip
    assert list(front["cpu_seconds"]) == sorted(front["cpu_seconds"])


def test_the_report_stage_writes_tables_and_plot(tmp_path: Path) -> None:
    paths = []
    for engine, trials in STUDIES.items():
        path = tmp_path / f"{engine}.csv"
        TrialsLog(path, SPACE).write(trials)
        paths.append((engine, path))
    args = argparse.Namespace(
        trials=paths, evaluations=[], config=[], corpus="emodb", protocol="speaker",
        out_dir=tmp_path / "out",
        config_json='{"search_space": {"lr": {"type": "choice", "choices": [0.1, 0.01]}, '
        '"rounds": {"type": "choice", "choices": [5, 10]}}}',
    )  # fmt: skip
    assert summary.run(args) == 0
    written = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(written["engine"]) == ["grid", "optuna"]
    assert len(pd.read_csv(tmp_path / "out" / "pareto.csv")) == 3
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 5000
    # the pages Snakemake's report shows inline: one row per engine, one per front member
    summary_page = (tmp_path / "out" / "summary.html").read_text()
    assert summary_page.count("<tr>") == 1 + 2 and "<td>grid</td>" in summary_page
    assert (tmp_path / "out" / "pareto.html").read_text().count("<tr>") == 1 + 3
