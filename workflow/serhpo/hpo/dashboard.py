"""Every engine's trials, also in an Optuna storage, for a live view with optuna-dashboard.

Optuna users watch a running study with ``optuna-dashboard <storage>``. serhpo records each
trial of every engine (Ax, Hyperopt, grid and random too, not only Optuna) in one Optuna
journal per results folder, one study per engine, as soon as the trial is logged in
trials.csv: the objective value (validation BCA, maximised), the parameters, the per-epoch
scores as intermediate values and, as user attributes, the trial's number in trials.csv and
its times. ``serhpo hpo`` writes ``results/hpo/dashboard.journal`` (the federated studies
``results/federated/hpo/dashboard.journal``), so that

    optuna-dashboard results/hpo/dashboard.journal

shows all engines side by side while they run. The journal is only a view: trials.csv stays
the record, and a study that starts (or resumes) rebuilds its engine's study from it when
the two differ. Appends are serialised with an ``flock`` (several worker processes and
several engines' jobs share the file); a dashboard that cannot be written is logged and
never stops a study.

Example:
    >>> board = Dashboard(Path("results/hpo/dashboard.journal"), study="ax", space=space)
    ... # doctest: +SKIP
    >>> board.sync(trials)  # doctest: +SKIP
    >>> board.record(trial)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.settings import METRIC
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.trials_log import format_history, parse_history
from serhpo.trial import TrialStatus

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: The journal's file name, in the folder that holds the engines' study folders.
DASHBOARD_FILE = "dashboard.journal"
#: The user attribute that holds a trial's number in trials.csv.
TRIAL_ATTR = "serhpo_trial"


def default_journal(out_dir: Path, *, engine: str) -> tuple[Path, str]:
    """Where ``serhpo hpo --out out_dir`` records its trials, and the study's name there.

    The journal lies in the folder that holds the engine's folder (``results/hpo/`` for
    ``results/hpo/ax/study``); the study is named after the engine, followed by the folders
    below it but ``study`` (``ax``; ``ax/fold-0`` for an outer fold). A folder with no
    ancestor named after the engine keeps its journal beside it.

    Example:
        >>> default_journal(Path("results/hpo/ax/study"), engine="ax")
        (PosixPath('results/hpo/dashboard.journal'), 'ax')
        >>> default_journal(Path("results/hpo/grid/fold-2/study"), engine="grid")
        (PosixPath('results/hpo/dashboard.journal'), 'grid/fold-2')
        >>> default_journal(Path("runs/first"), engine="random")
        (PosixPath('runs/dashboard.journal'), 'random/first')
    """
    parts = out_dir.parts
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == engine:
            below = [p for p in parts[index + 1 :] if p != "study"]
            return Path(*parts[:index]) / DASHBOARD_FILE, "/".join([engine, *below])
    return out_dir.parent / DASHBOARD_FILE, f"{engine}/{out_dir.name}"


@dataclass(frozen=True)
class Dashboard:
    """One engine's study in the dashboard journal.

    Attributes:
        journal: the Optuna journal file (created with its folder when missing).
        study: the study's name (the engine, see :func:`default_journal`).
        space: the search space (the parameters' distributions).
    """

    journal: Path
    study: str
    space: SearchSpace

    def sync(self, trials: Sequence[FinishedTrial]) -> None:
        """Make the study hold exactly ``trials`` (trials.csv): rebuilt only when it differs.

        Call it under the study's lock, as the appends are, so that no trial is lost.
        """
        self._safely("sync", self._sync, trials)

    def record(self, trial: FinishedTrial) -> None:
        """Add one finished trial to the study (under the study's lock, after trials.csv)."""
        self._safely(f"trial {trial.trial}", self._record, trial)

    def _safely(self, what: str, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except Exception as error:  # a view must never stop the study it shows
            log.warning(
                "optuna-dashboard journal %s, study %s: %s failed (%s: %s); the study goes on "
                "and trials.csv is complete. Delete the journal to rebuild it on the next run.",
                self.journal,
                self.study,
                what,
                type(error).__name__,
                error,
            )

    def _load(self, *, create: bool = True) -> optuna.Study | None:
        import optuna

        storage = _storage(str(self.journal))
        if any(s.study_name == self.study for s in storage.get_all_studies()):
            return optuna.load_study(study_name=self.study, storage=storage)
        if not create:
            return None
        study = optuna.create_study(storage=storage, study_name=self.study, direction="maximize")
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still there in 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC])
        return study

    def _sync(self, trials: Sequence[FinishedTrial]) -> None:
        import optuna

        study = self._load(create=False)
        if study is not None:
            held = [t.user_attrs.get(TRIAL_ATTR) for t in study.get_trials(deepcopy=False)]
            if held == [t.trial for t in trials]:
                return
            optuna.delete_study(study_name=self.study, storage=_storage(str(self.journal)))
        study = self._load()
        assert study is not None
        if trials:
            study.add_trials([self._frozen(t) for t in trials])
        log.info(
            "optuna-dashboard: study %s in %s: %d trials", self.study, self.journal, len(trials)
        )

    def _record(self, trial: FinishedTrial) -> None:
        study = self._load()
        assert study is not None
        study.add_trial(self._frozen(trial))

    def _frozen(self, trial: FinishedTrial) -> optuna.trial.FrozenTrial:
        import optuna
        from optuna.trial import TrialState

        from serhpo.hpo.optuna_engine import distribution

        params = {p.name: p for p in self.space.params}
        active = {k: v for k, v in trial.params.items() if k in params and v is not None}
        usable = trial.status != TrialStatus.FAILED and not math.isnan(trial.value)
        state = {
            TrialStatus.COMPLETE: TrialState.COMPLETE,
            TrialStatus.PRUNED: TrialState.PRUNED,
        }.get(trial.status, TrialState.FAIL)
        if state == TrialState.COMPLETE and not usable:
            state = TrialState.FAIL
        attrs = {
            TRIAL_ATTR: trial.trial,
            "trial_seconds": _number(trial.trial_seconds),
            "cumulative_seconds": _number(trial.cumulative_seconds),
            "worker": trial.worker,
        }
        if trial.reason:
            attrs["reason"] = trial.reason
        if trial.engine_trial is not None:
            attrs["engine_trial"] = trial.engine_trial
        return optuna.trial.create_trial(
            state=state,
            value=trial.value if state == TrialState.COMPLETE else None,
            params=active,
            distributions={k: distribution(params[k]) for k in active},
            # rounded as trials.csv holds them, so a rebuilt study shows the same numbers
            intermediate_values={
                step: score
                for step, score in enumerate(parse_history(format_history(trial.history)))
                if math.isfinite(score)
            },
            user_attrs=attrs,
        )


@cache
def _storage(journal: str) -> optuna.storages.JournalStorage:
    """The journal's storage, opened once per process (it reads what others append)."""
    import optuna

    from serhpo.hpo.optuna_engine import FlockJournalLock

    Path(journal).parent.mkdir(parents=True, exist_ok=True)
    # Not ``<journal>.lock``: optuna-dashboard's own lock would take that name for a held lock.
    lock = FlockJournalLock(journal, suffix=".flock")
    return optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal, lock_obj=lock)
    )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
