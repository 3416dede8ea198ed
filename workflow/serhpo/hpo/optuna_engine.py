"""Optuna: TPE (or a multi-objective sampler) through ``study.ask()`` / ``study.tell()``.

The study lives in a journal file (``engine_state/optuna.journal``) opened with
``load_if_exists``, so a restarted study continues where its journal stands, and several
worker processes can share it (on a shared file system). Its pruner,
:class:`MarginMedianPruner`, stops trials when pruning is on (single objective; Optuna cannot
prune multi-objective trials, so those use the study's shared rule): Optuna's median rule with
the margin of :mod:`serhpo.hpo.pruning` (``hpo.pruning.margin``).

Example:
    >>> from serhpo.hpo.settings import HpoSettings
    >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, SearchSpace
    >>> settings = HpoSettings.from_config({"seed": 1}, engine="optuna")
    >>> engine = OptunaEngine(SearchSpace.from_config(DEFAULT_SEARCH_SPACE), settings)
    >>> proposal = engine.ask()
    >>> engine.tell(proposal, value=0.5, status=TrialStatus.COMPLETE, seconds=3.0)
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages.journal import JournalFileOpenLock
from optuna.trial import TrialState

from serhpo.errors import UserError
from serhpo.hpo.engine import Engine, FinishedTrial, Proposal, derived_seed
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import Param, Scalar, SearchSpace
from serhpo.trial import TrialStatus

log = logging.getLogger(__name__)

#: The study's name inside the journal.
STUDY_NAME = "serhpo"
JOURNAL_NAME = "optuna.journal"
_STATES = {
    TrialStatus.COMPLETE: TrialState.COMPLETE,
    TrialStatus.FAILED: TrialState.FAIL,
    TrialStatus.PRUNED: TrialState.PRUNED,
}


class MarginMedianPruner(optuna.pruners.BasePruner):
    """Optuna's median pruner with a margin: prune only below the median by more than ``margin``.

    After step ``s`` (>= ``n_warmup_steps``; an epoch, or an inner fold in a cross-validation
    study), once ``n_startup_trials`` trials have completed, a trial is pruned when its
    intermediate value at ``s`` is below the median of the completed trials' values at ``s``
    minus ``margin`` (the study maximises BCA). With ``margin=0`` this is
    ``optuna.pruners.MedianPruner``'s decision; the margin keeps trials within noise of the
    median running, as the shared rule (:class:`serhpo.hpo.pruning.EarlyStopRule`) does.

    Example:
        >>> pruner = MarginMedianPruner(margin=0.05, n_startup_trials=3, n_warmup_steps=1)
        >>> study = optuna.create_study(direction="maximize", pruner=pruner)
    """

    def __init__(
        self, *, margin: float = 0.05, n_startup_trials: int = 3, n_warmup_steps: int = 1
    ) -> None:
        self.margin = margin
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < self.n_startup_trials:
            return False
        at_step = [t.intermediate_values[step] for t in completed if step in t.intermediate_values]
        if len(at_step) < self.n_startup_trials:
            return False
        median = float(np.median(at_step))
        return float(trial.intermediate_values[step]) < median - self.margin


class FlockJournalLock(JournalFileOpenLock):
    """Optuna's journal lock, held with ``flock`` on ``<journal>.lock``.

    The kernel releases an flock when its process dies, so a study resumed after a kill does
    not wait for the 30 s grace period of the lock file that Optuna's default lock leaves
    behind. (Linux emulates flock on NFS with POSIX locks.)
    """

    def __init__(self, journal: str, *, suffix: str = ".lock") -> None:
        # The parent's own state is not used; ``suffix`` names the lock file beside the journal.
        self.path = journal + suffix
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        self._handle = open(self.path, "a")  # noqa: SIM115 (closed in release)
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def distribution(param: Param) -> BaseDistribution:
    """The Optuna distribution of a parameter.

    Example:
        >>> distribution(Param("lr", "loguniform", low=1e-6, high=1e-3))
        FloatDistribution(high=0.001, log=True, low=1e-06, step=None)
    """
    if param.is_categorical:
        assert param.choices is not None
        return CategoricalDistribution(list(param.choices))
    assert param.low is not None and param.high is not None
    if param.type == "int":
        return IntDistribution(int(param.low), int(param.high))
    return FloatDistribution(param.low, param.high, log=param.type == "loguniform")


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Scalar]:
    """Suggest the active parameters of ``space`` on an Optuna trial (define-by-run)."""
    params: dict[str, Scalar] = {}
    for param in space:
        if not space.is_active(param, params):
            continue
        if param.is_categorical:
            assert param.choices is not None
            value: Any = trial.suggest_categorical(param.name, list(param.choices))
        elif param.type == "int":
            value = trial.suggest_int(param.name, int(param.low), int(param.high))
        else:
            value = trial.suggest_float(
                param.name, param.low, param.high, log=param.type == "loguniform"
            )
        params[param.name] = param.coerce(value)
    return params


class OptunaEngine(Engine):
    """Optuna's TPE (seeded), median pruner and journal storage."""

    name = "optuna"
    parallel = True

    def __init__(
        self,
        space: SearchSpace,
        settings: HpoSettings,
        *,
        state_dir: Path | None = None,
        worker: int = 0,
    ) -> None:
        super().__init__(space, settings, state_dir=state_dir, worker=worker)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.multi_objective = settings.multi_objective.enabled
        self.native_pruning = settings.pruning.enabled and not self.multi_objective
        pruner: optuna.pruners.BasePruner = (
            MarginMedianPruner(
                margin=settings.pruning.margin,
                n_startup_trials=settings.pruning.min_trials,
                n_warmup_steps=settings.pruning.min_epochs,
            )
            if self.native_pruning
            else optuna.pruners.NopPruner()
        )
        self.journal = state_dir / JOURNAL_NAME if state_dir is not None else None
        storage = None
        if self.journal is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            storage = optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(
                    str(self.journal), lock_obj=FlockJournalLock(str(self.journal))
                )
            )
        directions = ["maximize", "minimize"] if self.multi_objective else ["maximize"]
        self.study = optuna.create_study(
            storage=storage,
            study_name=STUDY_NAME,
            directions=directions,
            pruner=pruner,
            load_if_exists=True,
        )
        if [d.name.lower() for d in self.study.directions] != directions:
            raise UserError(
                f"{self.journal} holds a study with directions "
                f"{[d.name.lower() for d in self.study.directions]}, but hpo.multi_objective."
                f"enabled asks for {directions}. Restore the setting or start a new study "
                f"(another --out folder)."
            )
        # Reseeded from the trials already there, so a restart does not replay the first draws.
        existing = len(self.study.get_trials(deepcopy=False))
        seed = (
            settings.seed
            if (worker, existing) == (0, 0)
            else derived_seed(settings.seed, worker, existing)
        )
        self.study.sampler = self._sampler(seed)

    def _sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        startup = self.settings.n_startup_trials
        options: dict[str, Any] = {"seed": seed}
        if startup is not None:
            options["n_startup_trials"] = startup
        if self.multi_objective and self.settings.multi_objective.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(
                population_size=self.settings.multi_objective.population_size, seed=seed
            )
        return optuna.samplers.TPESampler(**options)

    def ask(self) -> Proposal:
        trial = self.study.ask()
        return Proposal(params=suggest(trial, self.space), engine_trial=trial.number, handle=trial)

    def tell(
        self, proposal: Proposal, *, value: float | None, status: TrialStatus, seconds: float
    ) -> None:
        number = proposal.engine_trial if proposal.handle is None else proposal.handle
        self.study.tell(number, **self._outcome(value, status, seconds), skip_if_finished=True)

    def _outcome(self, value: float | None, status: TrialStatus, seconds: float) -> dict[str, Any]:
        if status == TrialStatus.COMPLETE and value is not None:
            values = [value, seconds] if self.multi_objective else [value]
            return {"values": values, "state": TrialState.COMPLETE}
        # Optuna keeps a pruned trial's last reported value and takes no value for it.
        return {"values": None, "state": _STATES[status]}

    def report(self, proposal: Proposal, epoch: int, score: float) -> None:
        if self.native_pruning:
            proposal.handle.report(score, epoch)

    def should_prune(self, proposal: Proposal, epoch: int) -> bool:
        return self.native_pruning and proposal.handle.should_prune()

    def replay(self, finished: Sequence[FinishedTrial]) -> None:
        """Reconcile the journal with trials.csv when no other worker runs (see :meth:`sync`)."""
        self.sync(finished, ())

    def sync(self, finished: Sequence[FinishedTrial], running: Sequence[Any]) -> None:
        """Reconcile the journal with trials.csv, which wins where they disagree.

        - no journal but finished trials (the journal was deleted): re-add them;
        - a trial still running in the journal and finished in trials.csv (its worker stopped
          between the two writes): tell it as trials.csv says;
        - a trial still running in the journal that no live worker claims (its worker was
          killed mid-trial): mark it failed and queue its parameters, so the next trial
          retries them;
        - a trial that a live worker claims (in ``running``): leave it to that worker.
        """
        stored = self.study.get_trials(deepcopy=False)
        if not stored:
            for trial in finished:
                self.study.add_trial(self._frozen(trial))
            return
        # Trials.csv lost (not merely behind: an interrupted trial is failed in the journal
        # only, and may be the only finished one while the first trials still run).
        scored = (TrialState.COMPLETE, TrialState.PRUNED)
        if not finished and any(t.state in scored for t in stored):
            raise UserError(
                f"{self.journal} holds {len(stored)} trials but trials.csv has none. Restore "
                f"trials.csv, or delete {self.journal} to start the study afresh."
            )
        by_number = {t.engine_trial: t for t in finished if t.engine_trial is not None}
        busy = {claim.engine_trial for claim in running}
        for frozen in stored:
            if frozen.state != TrialState.RUNNING or frozen.number in busy:
                continue
            logged = by_number.get(frozen.number)
            if logged is not None:
                outcome = self._outcome(
                    logged.value, logged.status, logged.cost(self.settings.multi_objective.cost)
                )
                self.study.tell(frozen.number, **outcome, skip_if_finished=True)
            else:
                log.warning(
                    "optuna trial %d was interrupted; it is marked failed and its parameters "
                    "are retried next",
                    frozen.number,
                )
                self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
                self.study.enqueue_trial(dict(frozen.params), skip_if_exists=False)

    def _frozen(self, trial: FinishedTrial) -> optuna.trial.FrozenTrial:
        ok = trial.status == TrialStatus.COMPLETE
        values = None
        if ok:
            cost = trial.cost(self.settings.multi_objective.cost)
            values = [trial.value, cost] if self.multi_objective else [trial.value]
        return optuna.trial.create_trial(
            state=_STATES[trial.status],
            values=values,
            params=dict(trial.params),
            distributions={name: distribution(self.space[name]) for name in trial.params},
            intermediate_values=dict(enumerate(trial.history, start=1)),
        )
