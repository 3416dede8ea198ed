from __future__ import annotations

from serhpo.hpo.pruning import EarlyStopRule
from serhpo.hpo.settings import HpoSettings, PruningSettings


def pruning(**keys: object) -> PruningSettings:
    """config hpo.pruning with these keys, the schema's defaults for the others."""
    return HpoSettings.from_config({"hpo": {"pruning": keys}}, engine="optuna").pruning


def test_chance_level_stops_after_min_epochs_only() -> None:
    rule = EarlyStopRule(pruning(enabled=True, min_epochs=2, chance_margin=0.02))
    assert rule.chance(1, 1 / 7) is None
    assert "chance level after epoch 2" in rule.chance(2, 1 / 7)
    assert rule.chance(2, 1 / 7 + 0.03) is None


def test_nothing_is_stopped_when_pruning_is_off() -> None:
    rule = EarlyStopRule(pruning(enabled=False))
    assert rule.chance(5, 0.0) is None
    assert rule.median(5, 0.0, [[0.9] * 5] * 5) is None


def test_median_rule_needs_enough_completed_trials_at_that_epoch() -> None:
    rule = EarlyStopRule(pruning(enabled=True, min_trials=3, margin=0.0))
    histories = [[0.2, 0.5], [0.3, 0.6], [0.4]]  # only two reached epoch 2
    assert rule.median(2, 0.1, histories) is None
    assert "median of 3 completed trials after epoch 1" in rule.median(1, 0.25, histories)
    assert rule.median(1, 0.35, histories) is None


def test_a_trial_within_the_margin_of_the_median_goes_on() -> None:
    rule = EarlyStopRule(pruning(enabled=True, min_trials=3))  # default margin 0.05
    histories = [[0.50], [0.52], [0.54]]  # median 0.52
    assert rule.settings.margin == 0.05
    assert rule.median(1, 0.51, histories) is None  # 0.01 below: noise on a few speakers
    assert rule.median(1, 0.48, histories) is None  # 0.04 below: still within the margin
    reason = rule.median(1, 0.40, histories)  # 0.12 below
    assert reason is not None and "by more than 0.05" in reason
