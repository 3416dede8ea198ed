from __future__ import annotations

from serhpo.hpo.pruning import EarlyStopRule
from serhpo.hpo.settings import PruningSettings


def test_chance_level_stops_after_min_epochs_only() -> None:
    rule = EarlyStopRule(PruningSettings(enabled=True, min_epochs=2, chance_margin=0.02))
    assert rule.chance(1, 1 / 7) is None
    assert "chance level after epoch 2" in rule.chance(2, 1 / 7)
    assert rule.chance(2, 1 / 7 + 0.03) is None


def test_nothing_is_stopped_when_pruning_is_off() -> None:
    rule = EarlyStopRule(PruningSettings(enabled=False))
    assert rule.chance(5, 0.0) is None
    assert rule.median(5, 0.0, [[0.9] * 5] * 5) is None


def test_median_rule_needs_enough_completed_trials_at_that_epoch() -> None:
    rule = EarlyStopRule(PruningSettings(enabled=True, min_trials=3))
    histories = [[0.2, 0.5], [0.3, 0.6], [0.4]]  # only two reached epoch 2
    assert rule.median(2, 0.1, histories) is None
    assert "median of 3 completed trials after epoch 1" in rule.median(1, 0.25, histories)
    assert rule.median(1, 0.35, histories) is None
