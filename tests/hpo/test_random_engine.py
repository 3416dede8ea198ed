from __future__ import annotations

import math

import numpy as np

from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.random_engine import RandomEngine, sample
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(None)


def proposals(seed: int, n: int) -> list[dict]:
    engine = RandomEngine(SPACE, HpoSettings.from_config({"seed": seed}, engine="random"))
    return [engine.ask().params for _ in range(n)]


def test_same_seed_same_trials_other_seed_other_trials() -> None:
    assert proposals(3, 10) == proposals(3, 10)
    assert proposals(3, 10) != proposals(4, 10)


def test_a_resumed_engine_continues_the_same_sequence() -> None:
    uninterrupted = proposals(5, 8)
    resumed = RandomEngine(SPACE, HpoSettings.from_config({"seed": 5}, engine="random"))
    resumed.replay(
        [FinishedTrial(i, p, 0.5, TrialStatus.COMPLETE) for i, p in enumerate(uninterrupted[:3])]
    )
    assert [resumed.ask().params for _ in range(5)] == uninterrupted[3:]


def test_draws_cover_the_space_log_uniformly() -> None:
    rng = np.random.default_rng(0)
    draws = [sample(SPACE, rng) for _ in range(3000)]
    decades = np.array([math.log10(d["lr"]) for d in draws])
    assert decades.min() >= -6 and decades.max() <= -3
    assert abs(np.mean(decades < -4.5) - 0.5) < 0.05  # half the draws below the log-midpoint
    assert {d["epochs"] for d in draws} == set(range(1, 11))
    assert {d["unfreeze"] for d in draws} == set(range(0, 6))
    assert {d["maxlen"] for d in draws} == set(SPACE["maxlen"].choices)
