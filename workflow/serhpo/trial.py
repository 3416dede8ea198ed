"""The contract between a trainer and an HPO study: one trial's result and its per-epoch reports."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class TrialStatus(StrEnum):
    """How a trial ended."""

    COMPLETE = "complete"
    FAILED = "failed"  # diverged (NaN/inf loss), collapsed to one class, or raised
    PRUNED = "pruned"  # stopped early by a pruner; its last score is kept


#: Called by a trainer after each epoch with (epoch starting at 1, validation BCA);
#: returns True when the study wants the trial stopped (pruned).
EpochReporter = Callable[[int, float], bool]


def never_prune(epoch: int, score: float) -> bool:
    """An :data:`EpochReporter` that lets every trial run to the end."""
    return False


@dataclass
class TrialResult:
    """What a trial produced.

    Attributes:
        value: validation balanced class accuracy (BCA) of the last epoch run; NaN when failed.
        status: how it ended.
        reason: why it failed or was pruned (empty when complete).
        history: validation BCA after each epoch run.
        extra: anything else worth logging (e.g. train loss, seconds per stage).
    """

    value: float
    status: TrialStatus = TrialStatus.COMPLETE
    reason: str = ""
    history: list[float] = field(default_factory=list)
    extra: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the trial has a usable score (complete or pruned, not NaN)."""
        return self.status != TrialStatus.FAILED and not math.isnan(self.value)
