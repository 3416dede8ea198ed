"""What every engine module provides: propose parameters, observe results, restore state.

An engine only proposes and observes; the study loop (:mod:`serhpo.hpo.study`) runs trials,
times them, logs them and decides when to stop. Engines are imported lazily, so a grid study
never pays for importing Ax.

Example:
    >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, SearchSpace
    >>> from serhpo.hpo.settings import HpoSettings
    >>> space = SearchSpace.from_config(DEFAULT_SEARCH_SPACE)
    >>> make_engine(space, HpoSettings.from_config({}, engine="grid")).ask().params
    {'lr': 1e-06, 'epochs': 1, 'unfreeze': 0, 'maxlen': 32000}
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import Scalar, SearchSpace
from serhpo.trial import TrialStatus

#: engine name -> "module:class", imported on first use.
ENGINE_CLASSES: dict[str, str] = {
    "ax": "serhpo.hpo.ax_engine:AxEngine",
    "hyperopt": "serhpo.hpo.hyperopt_engine:HyperoptEngine",
    "optuna": "serhpo.hpo.optuna_engine:OptunaEngine",
    "grid": "serhpo.hpo.grid_engine:GridEngine",
    "random": "serhpo.hpo.random_engine:RandomEngine",
}


@dataclass
class Proposal:
    """Parameters an engine wants evaluated.

    Attributes:
        params: the active parameters, in space order.
        engine_trial: the engine's own trial number (Optuna number, Ax index, Hyperopt tid).
        handle: the engine's own object for this trial (e.g. an ``optuna.Trial``).
    """

    params: dict[str, Scalar]
    engine_trial: int | None = None
    handle: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class FinishedTrial:
    """A trial as trials.csv records it (what :meth:`Engine.replay` re-feeds).

    Attributes:
        trial: the study's trial number (0-based, in the order trials finished).
        params: the active parameters.
        value: validation BCA (NaN when failed).
        status: complete, failed or pruned.
        trial_seconds: wall seconds of the trial.
        history: validation BCA after each epoch run.
        engine_trial: the engine's own number, when it has one.
        cumulative_seconds: wall seconds of the study when the trial finished (over resumes).
        reason: why it failed or was pruned.
        worker: the worker process that ran it.
        extra: what else the objective reported.
    """

    trial: int
    params: dict[str, Scalar]
    value: float
    status: TrialStatus
    trial_seconds: float = math.nan
    history: tuple[float, ...] = ()
    engine_trial: int | None = None
    cumulative_seconds: float = math.nan
    reason: str = ""
    worker: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def cost(self, measure: str = "trial_seconds") -> float:
        """The trial's cost for a multi-objective study (``hpo.multi_objective.cost``).

        ``trial_seconds`` is the wall time; ``cpu_seconds`` is what the objective reported
        in ``extra`` (NaN when it reported none, e.g. a trial that failed early).

        Example:
            >>> FinishedTrial(0, {}, 0.5, TrialStatus.COMPLETE, 9.0,
            ...               extra={"cpu_seconds": 2.5}).cost("cpu_seconds")
            2.5
        """
        if measure == "trial_seconds":
            return self.trial_seconds
        value = self.extra.get(measure)
        try:
            return float(value) if value is not None else math.nan
        except (TypeError, ValueError):
            return math.nan


class Engine(ABC):
    """One HPO library behind the study's ask/tell loop.

    Args:
        space: the search space, translated by the engine.
        settings: seed, budgets and engine options.
        state_dir: a folder the engine may keep state in (Optuna's journal).
        worker: 0 for a sequential study; the worker index when several share one study.
    """

    name: str = ""
    #: True when :meth:`should_prune` implements the engine's own pruner.
    native_pruning: bool = False
    #: True when several workers may share one study (the engine implements :meth:`sync`).
    parallel: bool = False

    def __init__(
        self,
        space: SearchSpace,
        settings: HpoSettings,
        *,
        state_dir: Path | None = None,
        worker: int = 0,
    ) -> None:
        self.space = space
        self.settings = settings
        self.state_dir = state_dir
        self.worker = worker

    @abstractmethod
    def ask(self) -> Proposal | None:
        """Propose the next parameters, or None when the engine has nothing left (grid)."""

    @abstractmethod
    def tell(
        self, proposal: Proposal, *, value: float | None, status: TrialStatus, seconds: float
    ) -> None:
        """Observe a finished trial; ``value`` is None when it failed.

        A pruned trial is told with its last score, a pessimistic estimate that steers the
        engine away from its region.
        """

    @abstractmethod
    def replay(self, finished: Sequence[FinishedTrial]) -> None:
        """Restore the engine after a restart from the trials already in trials.csv.

        Called once, before the first :meth:`ask`. Engines without saved state re-feed the
        trials; engines with saved state (Optuna's journal) reconcile it with them.
        """

    def sync(self, finished: Sequence[FinishedTrial], running: Sequence[Any]) -> None:
        """Catch up with the shared study before the next :meth:`ask` (parallel engines only).

        Called under the study lock before every ask, instead of :meth:`replay`, when workers
        may share the study. Must be idempotent.

        Args:
            finished: every trial in trials.csv.
            running: the :class:`~serhpo.hpo.workers.Claim` of each trial that another live
                worker is running; a trial neither finished nor running was interrupted and
                is to be proposed again.
        """
        raise NotImplementedError(f"the {self.name} engine runs one trial after another")

    def report(self, proposal: Proposal, epoch: int, score: float) -> None:  # noqa: B027
        """Hear a trial's validation BCA after ``epoch`` (engines with their own pruner)."""

    def should_prune(self, proposal: Proposal, epoch: int) -> bool:
        """Ask the engine's own pruner whether to stop the trial after ``epoch``."""
        return False

    def close(self) -> None:  # noqa: B027 (optional: most engines hold nothing)
        """Release files or connections."""


def make_engine(
    space: SearchSpace,
    settings: HpoSettings,
    *,
    state_dir: Path | None = None,
    worker: int = 0,
) -> Engine:
    """Build ``settings.engine``'s :class:`Engine` (importing its library only now).

    Example:
        >>> settings = HpoSettings.from_config({"seed": 1}, engine="random")
        >>> engine = make_engine(space, settings)  # doctest: +SKIP
    """
    module_name, class_name = ENGINE_CLASSES[settings.engine].split(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(space, settings, state_dir=state_dir, worker=worker)


def derived_seed(*parts: int) -> int:
    """A 31-bit seed derived from the study seed and other integers (worker, trial, resume).

    Engines reseeded on resume use it so that a resumed study neither repeats the first
    proposals nor depends on the clock.

    Example:
        >>> derived_seed(0, 5) == derived_seed(0, 5) != derived_seed(0, 6)
        True
    """
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] & 0x7FFFFFFF)
