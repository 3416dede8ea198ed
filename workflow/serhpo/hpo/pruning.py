"""The shared early-stop rule for engines without a pruner of their own.

After epoch k (k >= ``min_epochs``) a trial is stopped when its validation BCA is at chance
level (<= 1/n_classes + margin: the paper's collapsed trials, BCA 1/7, then cost one epoch
instead of ten) or below the median BCA that completed trials had after the same epoch.
Optuna uses its own median pruner for the second test; the chance test applies to every engine.

Example:
    >>> rule = EarlyStopRule(PruningSettings(enabled=True, min_trials=2))
    >>> rule.chance(1, 1 / 7)
    'at chance level after epoch 1: BCA 0.143 <= 1/7 + 0.02'
    >>> rule.median(2, 0.4, [(0.3, 0.6), (0.5, 0.7)])
    'below the median of 2 completed trials after epoch 2: BCA 0.400 < 0.650'
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from serhpo.hpo.settings import PruningSettings


class EarlyStopRule:
    """Decides, after an epoch, whether a trial is worth continuing."""

    def __init__(self, settings: PruningSettings) -> None:
        self.settings = settings

    def applies(self, epoch: int) -> bool:
        """True when pruning is on and ``epoch`` is late enough to judge."""
        return self.settings.enabled and epoch >= self.settings.min_epochs

    def chance(self, epoch: int, score: float) -> str | None:
        """The reason to stop a trial at chance level after ``epoch``, or None."""
        if not self.applies(epoch):
            return None
        limit = self.settings.chance_level + self.settings.chance_margin
        if score <= limit:
            return (
                f"at chance level after epoch {epoch}: BCA {score:.3f} <= "
                f"1/{self.settings.n_classes} + {self.settings.chance_margin:g}"
            )
        return None

    def median(self, epoch: int, score: float, completed: Sequence[Sequence[float]]) -> str | None:
        """The reason to stop a trial below the completed trials' median after ``epoch``.

        Args:
            epoch: the epoch just run (1-based).
            score: the trial's validation BCA after it.
            completed: per-epoch histories of the study's completed trials.
        """
        if not self.applies(epoch):
            return None
        at_epoch = [history[epoch - 1] for history in completed if len(history) >= epoch]
        if len(at_epoch) < self.settings.min_trials:
            return None
        middle = statistics.median(at_epoch)
        if score < middle:
            return (
                f"below the median of {len(at_epoch)} completed trials after epoch {epoch}: "
                f"BCA {score:.3f} < {middle:.3f}"
            )
        return None
