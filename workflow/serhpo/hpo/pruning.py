"""The shared early-stop rule for engines without a pruner of their own.

After step k (an epoch, or an inner fold in a cross-validation study; k >= ``min_epochs``) a
trial is stopped when its validation BCA is at chance level (<= 1/n_classes + chance_margin:
the paper's collapsed trials, BCA 1/7, then cost one epoch instead of ten) or when it is below
the median BCA that completed trials had after the same step by more than ``margin``
(``hpo.pruning.margin``, default 0.05): stop when ``BCA < median - margin``.

The margin is there because validation BCA on a few speakers is noisy: with a two-speaker
validation part, median pruning without it stopped 16-17 of 20 trials, most within 0.01 of
the median. A trial within the margin of the median goes on. Optuna applies the same rule
through :class:`serhpo.hpo.optuna_engine.MarginMedianPruner`; the chance test applies to every
engine.

Example:
    >>> from serhpo.hpo.settings import HpoSettings
    >>> rule = EarlyStopRule(HpoSettings.from_config(
    ...     {"hpo": {"pruning": {"enabled": True, "min_trials": 2}}}, engine="optuna").pruning)
    >>> rule.chance(1, 1 / 7)
    'at chance level after epoch 1: BCA 0.143 <= 1/7 + 0.02'
    >>> rule.median(2, 0.6, [(0.3, 0.6), (0.5, 0.7)]) is None  # within 0.05 of 0.65
    True
    >>> rule.median(2, 0.4, [(0.3, 0.6), (0.5, 0.7)])  # doctest: +ELLIPSIS
    'below the median of 2 completed trials after epoch 2 by more than 0.05: BCA 0.400 < ...'
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
                f"at chance level after {self.settings.step} {epoch}: BCA {score:.3f} <= "
                f"1/{self.settings.n_classes} + {self.settings.chance_margin:g}"
            )
        return None

    def median(self, epoch: int, score: float, completed: Sequence[Sequence[float]]) -> str | None:
        """The reason to stop a trial below the completed trials' median minus the margin.

        Args:
            epoch: the epoch (or inner fold) just run (1-based).
            score: the trial's validation BCA after it.
            completed: per-epoch histories of the study's completed trials.
        """
        if not self.applies(epoch):
            return None
        at_epoch = [history[epoch - 1] for history in completed if len(history) >= epoch]
        if len(at_epoch) < self.settings.min_trials:
            return None
        middle = statistics.median(at_epoch)
        margin = self.settings.margin
        if score < middle - margin:
            return (
                f"below the median of {len(at_epoch)} completed trials after "
                f"{self.settings.step} {epoch} by more than {margin:g}: "
                f"BCA {score:.3f} < {middle:.3f} - {margin:g}"
            )
        return None
