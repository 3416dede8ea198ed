from __future__ import annotations

import math

import pytest

from serhpo.hpo.engine import ENGINE_CLASSES, FinishedTrial, derived_seed, make_engine
from serhpo.hpo.settings import ENGINE_NAMES, HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.trial import TrialStatus

CONDITIONAL = SearchSpace.from_config(
    {
        "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "architecture": {"type": "choice", "choices": ["cnn", "mlp"]},
        "channels": {"type": "int", "low": 8, "high": 64, "when": {"architecture": "cnn"}},
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.5, "when": {"architecture": "mlp"}},
    }
)


def score(params: dict) -> float:
    bonus = params.get("channels", 0) / 64 if params["architecture"] == "cnn" else 0.3
    return 0.5 - abs(math.log10(params["lr"]) + 3) / 4 + bonus / 2


def test_every_engine_is_registered() -> None:
    assert set(ENGINE_CLASSES) == set(ENGINE_NAMES)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_every_engine_proposes_exactly_the_active_parameters(name: str) -> None:
    # Ax stays in its Sobol start (a Gaussian-process proposal costs seconds here).
    settings = HpoSettings.from_config(
        {"seed": 1, "hpo": {"n_sobol": 5, "n_startup_trials": 3, "grid_points": 2}}, engine=name
    )
    engine = make_engine(CONDITIONAL, settings)
    seen = set()
    for _ in range(6 if name != "ax" else 4):
        proposal = engine.ask()
        assert CONDITIONAL.check(proposal.params) == proposal.params
        seen.add(proposal.params["architecture"])
        engine.tell(
            proposal, value=score(proposal.params), status=TrialStatus.COMPLETE, seconds=1.0
        )
    assert seen == {"cnn", "mlp"} or name == "ax"
    if name != "ax":  # each Ax proposal from here on costs seconds
        failed = engine.ask()
        engine.tell(failed, value=None, status=TrialStatus.FAILED, seconds=0.1)
        assert engine.ask() is not None


@pytest.mark.parametrize("name", ["grid", "random", "hyperopt", "optuna"])
def test_replay_accepts_complete_failed_and_pruned_trials(name: str) -> None:
    engine = make_engine(
        CONDITIONAL,
        HpoSettings.from_config({"seed": 0, "hpo": {"n_startup_trials": 2}}, engine=name),
    )
    finished = [
        FinishedTrial(
            0,
            {"lr": 1e-3, "architecture": "cnn", "channels": 32},
            0.8,
            TrialStatus.COMPLETE,
            1.0,
            (0.5, 0.8),
        ),
        FinishedTrial(
            1,
            {"lr": 1e-2, "architecture": "mlp", "dropout": 0.1},
            math.nan,
            TrialStatus.FAILED,
            1.0,
        ),
        FinishedTrial(
            2,
            {"lr": 1e-4, "architecture": "mlp", "dropout": 0.4},
            0.2,
            TrialStatus.PRUNED,
            1.0,
            (0.2,),
        ),
    ]
    engine.replay(finished)
    assert CONDITIONAL.check(engine.ask().params)


def test_derived_seeds_differ_by_part_and_fit_31_bits() -> None:
    seeds = {derived_seed(0, worker, count) for worker in range(3) for count in range(50)}
    assert len(seeds) == 150
    assert all(0 <= seed < 2**31 for seed in seeds)


PINNED = SearchSpace.from_config(
    {
        "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "maxlen": 48000,  # pinned by a plain value
        "architecture": {"type": "fixed", "value": "cnn"},
    }
)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_every_engine_proposes_a_pinned_parameter_as_is_and_resumes_with_it(name: str) -> None:
    settings = HpoSettings.from_config(
        {"seed": 1, "hpo": {"n_sobol": 5, "n_startup_trials": 3, "grid_points": 2}}, engine=name
    )
    engine = make_engine(PINNED, settings)
    finished = []
    for number in range(3 if name != "grid" else 2):
        proposal = engine.ask()
        assert proposal.params["maxlen"] == 48000 and proposal.params["architecture"] == "cnn"
        assert PINNED.check(proposal.params) == proposal.params
        engine.tell(proposal, value=0.5, status=TrialStatus.COMPLETE, seconds=1.0)
        finished.append(
            FinishedTrial(number, proposal.params, 0.5, TrialStatus.COMPLETE, 1.0, (0.5,))
        )
    resumed = make_engine(PINNED, settings)
    resumed.replay(finished)
    if name != "grid":  # a two-point grid is spent
        assert resumed.ask().params["maxlen"] == 48000
