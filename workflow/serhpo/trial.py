"""The contract between a trainer and an HPO study: one trial's result and its per-epoch reports."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from serhpo.errors import UserError


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


#: What a study runs: parameters and an epoch reporter in, a TrialResult out.
Objective = Callable[[dict[str, Any], EpochReporter], TrialResult]

log = logging.getLogger(__name__)


def failed_on_error(
    run: Callable[[], TrialResult], *, what: str, prefix: str = "raised "
) -> TrialResult:
    """Run a trial; any exception but a :class:`~serhpo.errors.UserError` becomes ``failed``.

    A study goes on after a trial that raised: its reason (``prefix`` + the exception's type
    and message) is logged with the trial. A UserError (bad input, which every trial would
    meet) and ``KeyboardInterrupt`` stop it.

    Args:
        run: the trial.
        what: names the trial in the log (e.g. ``trial with params {...}``).
        prefix: starts the reason (e.g. ``inner fold 2: raised ``).

    Example:
        >>> failed_on_error(lambda: 1 / 0, what="a trial").reason
        'raised ZeroDivisionError: division by zero'
    """
    try:
        return run()
    except UserError:
        raise
    except Exception as error:  # the study goes on; the reason is logged with the trial
        log.exception("%s raised", what)
        return TrialResult(
            value=math.nan,
            status=TrialStatus.FAILED,
            reason=f"{prefix}{type(error).__name__}: {error}",
        )


@dataclass
class LazyObjective:
    """An objective whose data is loaded on its first trial in each process (picklable).

    A study pickles its objective into each worker process; the loaded data is not pickled
    but loaded again there, once, on the worker's first trial. A trial that raises anything
    but a :class:`~serhpo.errors.UserError` is a failed trial (:func:`failed_on_error`);
    loading the data is not guarded (an error there stops the study, or the trial, as the
    study decides).

    Attributes:
        load: builds the per-process objective (a picklable callable: a module-level
            function or a :func:`functools.partial` of one).
        what: names the objective in the log.

    Example:
        >>> objective = LazyObjective(lambda: lambda params, report: TrialResult(0.5))
        >>> objective({}, never_prune).value
        0.5
    """

    load: Callable[[], Objective]
    what: str = "trial"
    _loaded: Objective | None = field(default=None, init=False, repr=False, compare=False)

    def __call__(self, params: dict[str, Any], report: EpochReporter) -> TrialResult:
        if self._loaded is None:
            self._loaded = self.load()
        loaded = self._loaded
        return failed_on_error(
            lambda: loaded(params, report), what=f"{self.what} with params {params}"
        )

    @property
    def loaded(self) -> Objective:
        """The per-process objective (loaded now if no trial has run yet)."""
        if self._loaded is None:
            self._loaded = self.load()
        return self._loaded

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}
