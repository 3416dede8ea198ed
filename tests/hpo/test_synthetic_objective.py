from __future__ import annotations

import itertools
import time

import numpy as np

from serhpo.hpo.space import SearchSpace
from serhpo.hpo.synthetic_objective import (
    CHANCE_BCA,
    PEAK_BCA,
    SYNTHETIC_OPTIMUM,
    SyntheticObjective,
    expected_bca,
)
from serhpo.trial import TrialStatus


def never(epoch: int, score: float) -> bool:
    return False


def test_the_documented_optimum_is_the_maximum_over_the_space() -> None:
    space = SearchSpace.from_config(None)
    best = max(
        expected_bca({"lr": lr, "epochs": e, "unfreeze": u, "maxlen": m})
        for lr, e, u, m in itertools.product(
            np.geomspace(1e-6, 1e-3, 61),
            range(1, 11),
            range(0, 6),
            space["maxlen"].choices,
        )
    )
    assert best <= expected_bca(SYNTHETIC_OPTIMUM) == PEAK_BCA


def test_each_epoch_is_reported_on_a_rising_curve_ending_at_the_value() -> None:
    reports: list[tuple[int, float]] = []
    result = SyntheticObjective(noise=0.0)(
        SYNTHETIC_OPTIMUM, lambda e, s: reports.append((e, s)) is not None
    )
    assert [e for e, _ in reports] == list(range(1, 9))
    scores = [s for _, s in reports]
    assert scores == sorted(scores) and result.history == scores
    assert result.value == scores[-1] and result.status == TrialStatus.COMPLETE


def test_high_lr_with_early_unfreeze_collapses_to_chance_level() -> None:
    result = SyntheticObjective()({"lr": 5e-4, "epochs": 10, "unfreeze": 0, "maxlen": 80000}, never)
    assert result.history == [CHANCE_BCA] * 10
    late_unfreeze = SyntheticObjective(noise=0.0)(
        {"lr": 5e-4, "epochs": 10, "unfreeze": 3, "maxlen": 80000}, never
    )
    assert late_unfreeze.value > CHANCE_BCA


def test_noise_is_deterministic_per_seed_and_parameters() -> None:
    params = {"lr": 3e-5, "epochs": 5, "unfreeze": 2, "maxlen": 64000}
    a = SyntheticObjective(seed=1)(params, never).history
    assert a == SyntheticObjective(seed=1)(params, never).history
    assert a != SyntheticObjective(seed=2)(params, never).history


def test_a_stop_request_ends_the_trial_as_pruned() -> None:
    result = SyntheticObjective()(SYNTHETIC_OPTIMUM, lambda e, s: e == 2)
    assert result.status == TrialStatus.PRUNED and len(result.history) == 2


def test_epochs_sleep_in_proportion_to_maxlen() -> None:
    objective = SyntheticObjective(epoch_seconds=0.01)
    start = time.perf_counter()
    objective({**SYNTHETIC_OPTIMUM, "epochs": 2, "maxlen": 160000}, never)
    assert time.perf_counter() - start >= 0.04
