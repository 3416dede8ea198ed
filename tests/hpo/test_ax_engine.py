from __future__ import annotations

import math

from serhpo.hpo.ax_engine import AxEngine, ax_parameters
from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(None)


def test_the_space_is_translated_into_ax_parameters() -> None:
    lr, epochs, unfreeze, maxlen = ax_parameters(SPACE)
    assert (lr.name, lr.bounds, lr.parameter_type, lr.scaling) == (
        "lr",
        (1e-6, 1e-3),
        "float",
        "log",
    )
    assert (epochs.bounds, epochs.parameter_type) == ((1, 10), "int")
    assert (unfreeze.bounds, unfreeze.parameter_type) == ((0, 5), "int")
    assert maxlen.values == list(SPACE["maxlen"].choices)
    assert (maxlen.parameter_type, maxlen.is_ordered) == ("int", True)


def test_conditional_parameters_become_a_hierarchical_space() -> None:
    space = SearchSpace.from_config(
        {
            "architecture": {"type": "choice", "choices": ["cnn", "mlp"]},
            "channels": {"type": "int", "low": 8, "high": 64, "when": {"architecture": "cnn"}},
        }
    )
    architecture, _ = ax_parameters(space)
    assert (architecture.parameter_type, architecture.is_ordered) == ("str", False)
    assert architecture.dependent_parameters == {"cnn": ["channels"]}


def test_replay_attaches_the_finished_trials() -> None:
    engine = AxEngine(SPACE, HpoSettings.from_config({"hpo": {"n_sobol": 5}}, engine="ax"))
    params = {"lr": 2e-5, "epochs": 8, "unfreeze": 1, "maxlen": 80000}
    engine.replay(
        [
            FinishedTrial(0, params, 0.9, TrialStatus.COMPLETE),
            FinishedTrial(1, {**params, "lr": 1e-3}, math.nan, TrialStatus.FAILED),
            FinishedTrial(2, {**params, "epochs": 2}, 0.3, TrialStatus.PRUNED),
        ]
    )
    trials = engine.client._experiment.trials  # the attached trials, in order
    assert [trials[i].arm.parameters for i in range(3)][0] == params
    assert [trials[i].status.name for i in range(3)] == ["COMPLETED", "FAILED", "COMPLETED"]
    proposal = engine.ask()  # the Sobol start continues (3 of 5 used)
    assert SPACE.check(proposal.params) and proposal.engine_trial == 3
