from __future__ import annotations

from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.hyperopt_engine import HyperoptEngine, decode, encode
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.synthetic_objective import SyntheticObjective
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(None)
CONDITIONAL = SearchSpace.from_config(
    {
        "architecture": {"type": "choice", "choices": ["cnn", "mlp"]},
        "channels": {"type": "int", "low": 8, "high": 64, "when": {"architecture": "cnn"}},
    }
)


def run(engine: HyperoptEngine, n: int, seed: int = 0) -> list[dict]:
    objective = SyntheticObjective(seed=seed)
    seen = []
    for _ in range(n):
        proposal = engine.ask()
        result = objective(proposal.params, lambda e, s: False)
        engine.tell(proposal, value=result.value, status=TrialStatus.COMPLETE, seconds=1.0)
        seen.append((proposal.params, result.value))
    return seen


def test_encode_and_decode_are_inverse_with_conditions() -> None:
    for params in ({"architecture": "cnn", "channels": 17}, {"architecture": "mlp"}):
        vals = encode(CONDITIONAL, params)
        assert decode(CONDITIONAL, vals) == params
    assert encode(CONDITIONAL, {"architecture": "mlp"}) == {"architecture": [1], "channels": []}


def test_same_seed_same_trials() -> None:
    settings = HpoSettings.from_config(
        {"seed": 2, "hpo": {"n_startup_trials": 3}}, engine="hyperopt"
    )
    first = run(HyperoptEngine(SPACE, settings), 8)
    assert first == run(HyperoptEngine(SPACE, settings), 8)
    assert first != run(HyperoptEngine(SPACE, settings.with_overrides(seed=3)), 8)


def test_replayed_trials_lead_to_the_proposals_of_an_uninterrupted_study() -> None:
    settings = HpoSettings.from_config(
        {"seed": 1, "hpo": {"n_startup_trials": 3}}, engine="hyperopt"
    )
    uninterrupted = run(HyperoptEngine(SPACE, settings), 8)
    resumed = HyperoptEngine(SPACE, settings)
    resumed.replay(
        [
            FinishedTrial(i, params, value, TrialStatus.COMPLETE)
            for i, (params, value) in enumerate(uninterrupted[:5])
        ]
    )
    assert [p for p, _ in run(resumed, 3)] == [p for p, _ in uninterrupted[5:]]


def test_failed_trials_do_not_guide_tpe() -> None:
    engine = HyperoptEngine(
        SPACE, HpoSettings.from_config({"hpo": {"n_startup_trials": 1}}, engine="hyperopt")
    )
    proposal = engine.ask()
    engine.tell(proposal, value=None, status=TrialStatus.FAILED, seconds=1.0)
    assert engine.trials.trials[0]["result"]["status"] == "fail"
    assert SPACE.check(engine.ask().params)
