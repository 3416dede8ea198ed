from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from serhpo.errors import UserError
from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.optuna_engine import (
    FlockJournalLock,
    MarginMedianPruner,
    OptunaEngine,
    distribution,
)
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(None)


def test_each_parameter_type_has_its_optuna_distribution() -> None:
    assert distribution(SPACE["lr"]) == FloatDistribution(1e-6, 1e-3, log=True)
    assert distribution(SPACE["epochs"]) == IntDistribution(1, 10)
    assert distribution(SPACE["maxlen"]) == CategoricalDistribution(list(SPACE["maxlen"].choices))


def finished(engine: OptunaEngine, n: int) -> list[FinishedTrial]:
    trials = []
    for number in range(n):
        proposal = engine.ask()
        engine.tell(proposal, value=0.1 * number, status=TrialStatus.COMPLETE, seconds=1.0)
        trials.append(
            FinishedTrial(
                number,
                proposal.params,
                0.1 * number,
                TrialStatus.COMPLETE,
                1.0,
                (0.1 * number,),
                proposal.engine_trial,
            )
        )
    return trials


def test_a_deleted_journal_is_rebuilt_from_trials_csv(tmp_path: Path) -> None:
    settings = HpoSettings.from_config({"seed": 0}, engine="optuna")
    logged = finished(OptunaEngine(SPACE, settings, state_dir=tmp_path / "a"), 3)
    logged.append(FinishedTrial(3, logged[0].params, math.nan, TrialStatus.FAILED, 1.0))
    rebuilt = OptunaEngine(SPACE, settings, state_dir=tmp_path / "b")
    rebuilt.replay(logged)
    trials = rebuilt.study.get_trials()
    assert [t.params for t in trials] == [t.params for t in logged]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert rebuilt.study.best_value == pytest.approx(0.2)


def test_an_interrupted_trial_is_failed_and_its_parameters_retried(tmp_path: Path) -> None:
    engine = OptunaEngine(
        SPACE, HpoSettings.from_config({"seed": 0}, engine="optuna"), state_dir=tmp_path
    )
    logged = finished(engine, 2)
    running = engine.ask()  # the process dies here
    resumed = OptunaEngine(
        SPACE, HpoSettings.from_config({"seed": 0}, engine="optuna"), state_dir=tmp_path
    )
    resumed.replay(logged)
    assert resumed.study.get_trials()[2].state == TrialState.FAIL
    assert resumed.ask().params == running.params


def test_a_trial_logged_but_not_told_is_told_on_resume(tmp_path: Path) -> None:
    engine = OptunaEngine(
        SPACE, HpoSettings.from_config({"seed": 0}, engine="optuna"), state_dir=tmp_path
    )
    proposal = engine.ask()  # logged to trials.csv, then the process died before tell
    logged = [
        FinishedTrial(
            0, proposal.params, 0.7, TrialStatus.COMPLETE, 2.0, (0.7,), proposal.engine_trial
        )
    ]
    resumed = OptunaEngine(
        SPACE, HpoSettings.from_config({"seed": 0}, engine="optuna"), state_dir=tmp_path
    )
    resumed.replay(logged)
    assert resumed.study.get_trials()[0].value == 0.7


def test_a_journal_without_trials_csv_is_refused(tmp_path: Path) -> None:
    finished(
        OptunaEngine(SPACE, HpoSettings.from_config({}, engine="optuna"), state_dir=tmp_path), 1
    )
    with pytest.raises(UserError, match="trials.csv has none"):
        OptunaEngine(
            SPACE, HpoSettings.from_config({}, engine="optuna"), state_dir=tmp_path
        ).replay([])


def test_switching_to_multi_objective_on_an_old_journal_is_refused(tmp_path: Path) -> None:
    OptunaEngine(SPACE, HpoSettings.from_config({}, engine="optuna"), state_dir=tmp_path)
    multi = HpoSettings.from_config(
        {"hpo": {"multi_objective": {"enabled": True}}}, engine="optuna"
    )
    with pytest.raises(UserError, match="directions"):
        OptunaEngine(SPACE, multi, state_dir=tmp_path)


def test_native_pruning_is_used_for_a_single_objective_only() -> None:
    pruning = {"enabled": True}
    assert OptunaEngine(
        SPACE, HpoSettings.from_config({"hpo": {"pruning": pruning}}, engine="optuna")
    ).native_pruning
    multi = {"enabled": True}
    assert not OptunaEngine(
        SPACE,
        HpoSettings.from_config(
            {"hpo": {"pruning": pruning, "multi_objective": multi}}, engine="optuna"
        ),
    ).native_pruning


def test_the_journal_lock_is_a_kernel_lock(tmp_path: Path) -> None:
    lock = FlockJournalLock(str(tmp_path / "optuna.journal"))
    assert lock.acquire()
    lock.release()
    lock.release()  # releasing twice is harmless
    assert (tmp_path / "optuna.journal.lock").exists()
    assert isinstance(lock, optuna.storages.journal.JournalFileOpenLock)


def test_workers_sync_a_journal_whose_only_finished_trial_was_interrupted(tmp_path: Path) -> None:
    OptunaEngine(
        SPACE, HpoSettings.from_config({}, engine="optuna"), state_dir=tmp_path, worker=1
    ).ask()  # worker 1 is killed
    worker_0 = OptunaEngine(
        SPACE, HpoSettings.from_config({}, engine="optuna"), state_dir=tmp_path, worker=0
    )
    worker_0.sync([], ())  # fails the interrupted trial and queues its parameters
    worker_2 = OptunaEngine(
        SPACE, HpoSettings.from_config({}, engine="optuna"), state_dir=tmp_path, worker=2
    )
    worker_2.sync([], ())  # trials.csv is behind the journal, not lost: no error
    states = [t.state for t in worker_2.study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]


@pytest.mark.parametrize(("score", "pruned"), [(0.51, False), (0.48, False), (0.40, True)])
def test_optunas_pruner_spares_trials_within_the_margin(score: float, pruned: bool) -> None:
    settings = HpoSettings.from_config(
        {"hpo": {"pruning": {"enabled": True, "min_trials": 3, "min_epochs": 1}}}, engine="optuna"
    )
    engine = OptunaEngine(SPACE, settings)
    pruner = engine.study.pruner
    assert isinstance(pruner, MarginMedianPruner) and pruner.margin == 0.05
    for value in (0.50, 0.52, 0.54):  # completed trials, median 0.52 after step 1
        proposal = engine.ask()
        engine.report(proposal, 1, value)
        engine.tell(proposal, value=value, status=TrialStatus.COMPLETE, seconds=1.0)
    proposal = engine.ask()
    engine.report(proposal, 1, score)
    assert engine.should_prune(proposal, 1) is pruned
