from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.optuna_engine import JOURNAL_NAME, STUDY_NAME
from serhpo.hpo.pareto import dominates, pareto_front
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.study import run_study
from serhpo.hpo.synthetic_objective import SyntheticObjective
from serhpo.hpo.trials_log import TrialsLog
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(None)


def point(trial: int, value: float, seconds: float, status=TrialStatus.COMPLETE) -> FinishedTrial:
    return FinishedTrial(trial, {}, value, status, trial_seconds=seconds)


def test_the_front_keeps_exactly_the_non_dominated_complete_trials() -> None:
    trials = [
        point(0, 0.90, 50.0),
        point(1, 0.80, 10.0),
        point(2, 0.70, 20.0),  # dominated by 1
        point(3, 0.90, 60.0),  # dominated by 0
        point(4, 0.95, 5.0, TrialStatus.PRUNED),  # partial score: not a candidate
        point(5, math.nan, 1.0, TrialStatus.FAILED),
        point(6, 0.95, 90.0),
    ]
    assert [t.trial for t in pareto_front(trials)] == [1, 0, 6]
    assert dominates(trials[1], trials[2]) and not dominates(trials[0], trials[1])
    assert pareto_front([]) == []


def assert_is_the_front(front: list[FinishedTrial], trials: list[FinishedTrial]) -> None:
    complete = [t for t in trials if t.status == TrialStatus.COMPLETE]
    front_numbers = {t.trial for t in front}
    for member in front:  # nothing dominates a member
        assert not any(dominates(other, member) for other in complete)
    for other in complete:  # every other trial is dominated by a member
        if other.trial not in front_numbers:
            assert any(dominates(member, other) for member in front)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_a_multi_objective_optuna_study_writes_a_non_dominated_front(
    tmp_path: Path, sampler: str
) -> None:
    settings = HpoSettings.from_config(
        {
            "hpo": {
                "n_trials": 10,
                "multi_objective": {"enabled": True, "sampler": sampler, "population_size": 4},
            }
        },
        engine="optuna",
    )
    outcome = run_study(SPACE, SyntheticObjective(epoch_seconds=0.002), settings, out_dir=tmp_path)
    trials = TrialsLog(tmp_path / "trials.csv", SPACE).read()
    front = TrialsLog(tmp_path / "pareto.csv", SPACE).read()
    assert front == outcome.pareto and len(front) >= 2
    assert [t.trial_seconds for t in front] == sorted(t.trial_seconds for t in front)
    assert_is_the_front(front, trials)
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "engine_state/optuna.journal"))
    )
    study = optuna.load_study(study_name="serhpo", storage=storage)
    assert {t.number for t in study.best_trials} == {t.engine_trial for t in front}


def test_other_engines_compute_the_front_from_trials_csv(tmp_path: Path) -> None:
    settings = HpoSettings.from_config(
        {"hpo": {"n_trials": 8, "multi_objective": {"enabled": True}}}, engine="random"
    )
    run_study(SPACE, SyntheticObjective(epoch_seconds=0.001), settings, out_dir=tmp_path)
    trials = TrialsLog(tmp_path / "trials.csv", SPACE).read()
    assert_is_the_front(TrialsLog(tmp_path / "pareto.csv", SPACE).read(), trials)


def test_the_front_can_trade_bca_against_reported_cpu_seconds() -> None:
    # Wall time favours trial 0; the CPU seconds the objective reported favour trial 1.
    trials = [
        FinishedTrial(0, {}, 0.80, TrialStatus.COMPLETE, 5.0, extra={"cpu_seconds": 40.0}),
        FinishedTrial(1, {}, 0.80, TrialStatus.COMPLETE, 9.0, extra={"cpu_seconds": 4.0}),
        FinishedTrial(2, {}, 0.70, TrialStatus.COMPLETE, 1.0),  # reported no CPU time
    ]
    assert [t.trial for t in pareto_front(trials, cost="cpu_seconds")] == [1]
    assert [t.trial for t in pareto_front(trials)] == [2, 0]
    assert math.isnan(trials[2].cost("cpu_seconds"))


def test_optuna_searches_bca_against_cpu_seconds_when_told(tmp_path: Path) -> None:
    class ReportsCpu(SyntheticObjective):
        def __call__(self, params, report):
            result = super().__call__(params, report)
            result.extra["cpu_seconds"] = 1000.0 * float(params["lr"])  # not the wall time
            return result

    settings = HpoSettings.from_config(
        {"hpo": {"n_trials": 6, "multi_objective": {"enabled": True, "cost": "cpu_seconds"}}},
        engine="optuna",
    )
    outcome = run_study(SPACE, ReportsCpu(seed=0), settings, out_dir=tmp_path)
    journal = tmp_path / "engine_state" / JOURNAL_NAME
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    told = {t.number: t.values for t in study.trials if t.values}
    for trial in outcome.trials:
        if trial.status == TrialStatus.COMPLETE:
            assert told[trial.engine_trial][1] == pytest.approx(1000.0 * trial.params["lr"])
    front = pareto_front(outcome.trials, cost="cpu_seconds")
    assert [t.trial for t in outcome.pareto] == [t.trial for t in front]
