"""One engine's hyper-parameter study: the ask/tell loop shared by every engine.

The loop asks the engine for parameters, runs the objective ``(params, report) ->
TrialResult`` with an :data:`~serhpo.trial.EpochReporter` that can stop the trial (pruning,
time budget), times it, turns exceptions and NaN scores into failed trials (the study goes
on), appends the trial to trials.csv at once and tells the engine. The budget (trials and/or
wall minutes over all resumes) is the same for every engine. Running the same study again
resumes it from trials.csv.

Engines that can share a study (Optuna, random, grid) run it with several workers: with
``hpo.n_workers`` > 1, ``serhpo hpo`` starts that many processes; with ``--worker W`` it runs
as worker W alone, so that separate jobs (on a cluster: one SLURM job each, on a shared file
system) work on one study; a last ``serhpo hpo`` without ``--worker`` then finds the budget spent
(or runs what a stopped worker left) and writes best.yaml and the Pareto front. Workers share
one trials.csv and claim each trial before running it (:mod:`serhpo.hpo.workers`), so the
budget is met exactly, with no trial lost or run twice, also when a worker is killed. Ax and
Hyperopt propose from every earlier result and run one trial after another.

Output folder::

    trials.csv     one row per finished trial (see serhpo.hpo.trials_log)
    best.yaml      engine, trial, params, value, metric
    pareto.csv/png with hpo.multi_objective.enabled: BCA against the trial's cost
    engine_state/  study.yaml (what the study was started with), a lock, optuna.journal,
                   session.yaml (the study clock), workers/ (worker locks and running trials)

The loop knows no objective: its caller passes one in (``serhpo hpo``, :mod:`serhpo.tune`,
registers the trainer's, the federated and the synthetic one). The worker processes are
started by :func:`serhpo.hpo.workers.run_worker_processes`.

Example:
    >>> from serhpo.hpo.synthetic_objective import SyntheticObjective
    >>> outcome = run_study(SearchSpace.from_config(None), SyntheticObjective(),
    ...                     HpoSettings.from_config({"hpo": {"n_trials": 3}}, engine="random"),
    ...                     out_dir=tmp_path / "study", dashboard=None)  # doctest: +SKIP
    >>> len(outcome.trials)  # doctest: +SKIP
    3
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from serhpo.errors import UserError
from serhpo.hpo.dashboard import Dashboard
from serhpo.hpo.engine import Engine, FinishedTrial, Proposal, make_engine
from serhpo.hpo.pruning import EarlyStopRule
from serhpo.hpo.settings import PARALLEL_ENGINES, HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.trials_log import TrialsLog, best_trial, file_lock, write_best
from serhpo.hpo.workers import (
    Claim,
    drop_claim,
    live_claims,
    run_worker_processes,
    session_origin,
    worker_slot,
    write_claim,
)
from serhpo.trial import Objective, TrialResult, TrialStatus, failed_on_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyPaths:
    """Where a study keeps its files."""

    out_dir: Path
    #: Where the trials are also recorded for optuna-dashboard (None: nowhere).
    dashboard: Dashboard | None = None

    @property
    def trials(self) -> Path:
        return self.out_dir / "trials.csv"

    @property
    def best(self) -> Path:
        return self.out_dir / "best.yaml"

    @property
    def state(self) -> Path:
        return self.out_dir / "engine_state"

    @property
    def lock(self) -> Path:
        return self.state / "study.lock"

    @property
    def meta(self) -> Path:
        return self.state / "study.yaml"

    @property
    def start_lock(self) -> Path:
        """Beside the folder: held while a starting worker checks (or sets aside) the study."""
        return self.out_dir.with_name(self.out_dir.name + ".lock")


@dataclass
class StudyOutcome:
    """What a finished (or already complete) study holds.

    Attributes:
        trials: every finished trial, from trials.csv.
        best: the content of best.yaml (empty for a worker whose study has no score yet).
        paths: the study's files.
        pareto: the Pareto front (multi-objective studies).
        ran: the trial numbers this call ran (all its workers).
        stopped: why the last worker of this call stopped.
    """

    trials: list[FinishedTrial]
    best: dict[str, Any]
    paths: StudyPaths
    pareto: list[FinishedTrial] = field(default_factory=list)
    ran: list[int] = field(default_factory=list)
    stopped: str = ""


def run_study(
    space: SearchSpace,
    objective: Objective,
    settings: HpoSettings,
    *,
    out_dir: Path,
    trial_inputs: Mapping[str, Any] | None = None,
    restart_on_change: bool = False,
    worker: int | None = None,
    per_fold: bool = False,
    dashboard: Dashboard | None = None,
) -> StudyOutcome:
    """Run (or resume) one engine's study until its budget is spent.

    Args:
        space: the search space.
        objective: runs one trial; with ``settings.n_workers`` > 1 it is pickled into each
            worker process, so it must be picklable (build heavy state lazily, per process).
        settings: engine, seed, budgets, pruning, multi-objective, workers.
        out_dir: the study's folder; trials already in its trials.csv are kept and count
            towards the budget.
        trial_inputs: what a trial's score depends on besides its parameters (the split's
            checksum, the fixed training settings ...); a study is resumed only with the same.
        restart_on_change: when the folder holds a study started with another engine, space
            or ``trial_inputs``, move it aside (``<out_dir>.replaced-<time>``) and start afresh
            instead of refusing. Budgets may change either way: a larger one extends the study.
        worker: run as this one worker of a study that other processes (e.g. other cluster
            jobs) work on at the same time, in this process, and return when nothing of the
            budget is left to start; best.yaml is kept up to date but a study without a score
            yet is no error and no Pareto front is written. None: run the whole study here
            (``settings.n_workers`` processes) and finish it.
        per_fold: a cross-validation study: trials.csv gets the per-inner-fold scores
            (``fold_values``) that the objective reports in ``extra``.
        dashboard: also record every trial in this Optuna study, for optuna-dashboard
            (:mod:`serhpo.hpo.dashboard`); it is made to match trials.csv first.

    Returns:
        The study's trials, best trial and paths.

    Raises:
        UserError: when the folder holds another engine's or another space's study, when
            no trial produced a score, or when ``worker`` is given for an engine that runs one
            trial after another, or is running already.

    Example:
        >>> from serhpo.hpo.synthetic_objective import SyntheticObjective
        >>> settings = HpoSettings.from_config({"hpo": {"n_trials": 5}}, engine="optuna")
        >>> outcome = run_study(space, SyntheticObjective(), settings,
        ...                     out_dir=tmp_path)  # doctest: +SKIP
        >>> len(outcome.trials)  # doctest: +SKIP
        5
    """
    paths = StudyPaths(out_dir, dashboard=dashboard)
    if worker is not None and settings.engine not in PARALLEL_ENGINES:
        raise UserError(
            f"--worker {worker}: the {settings.engine} engine proposes each trial from every "
            f"earlier result, so its study runs in one process; workers can share studies of "
            f"{', '.join(PARALLEL_ENGINES)}. Run it without --worker."
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(paths.start_lock):  # workers starting together set a study aside once
        _check_meta(
            paths, space, settings, trial_inputs=trial_inputs, restart_on_change=restart_on_change
        )
    finished = TrialsLog(paths.trials, space, per_fold=per_fold).read()
    if dashboard is not None:
        with file_lock(paths.lock):  # appends take it too: the journal misses no trial
            dashboard.sync(TrialsLog(paths.trials, space, per_fold=per_fold).read())
    if finished:
        log.info("resuming the %s study with %d finished trials", settings.engine, len(finished))
    if worker is not None:
        ran, stopped = _work(space, objective, settings, paths, worker=worker, per_fold=per_fold)
        with file_lock(paths.lock):
            finished = TrialsLog(paths.trials, space, per_fold=per_fold).read()
            best = (
                write_best(paths.best, engine=settings.engine, trials=finished)
                if best_trial(finished) is not None
                else {}
            )
        log.info(
            "%s worker %d: ran %d trials; the study holds %d (%s)",
            settings.engine,
            worker,
            len(ran),
            len(finished),
            stopped,
        )
        return StudyOutcome(trials=finished, best=best, paths=paths, ran=ran, stopped=stopped)
    if settings.n_workers == 1:
        ran, stopped = _work(space, objective, settings, paths, worker=0, per_fold=per_fold)
        finished = TrialsLog(paths.trials, space, per_fold=per_fold).read()
    elif settings.n_trials is not None and len(finished) >= settings.n_trials:
        # e.g. after the worker jobs of a workflow: nothing to start processes for.
        ran, stopped = [], f"trial budget of {settings.n_trials} reached"
        log.info("%s: %s", settings.engine, stopped)
    else:
        run_worker_processes(
            _work,
            (space, objective, settings, paths),
            n_workers=settings.n_workers,
            name=f"hpo-{settings.engine}-worker",
            per_fold=per_fold,
        )
        before = len(finished)
        finished = TrialsLog(paths.trials, space, per_fold=per_fold).read()
        ran, stopped = [t.trial for t in finished[before:]], "every worker stopped"
    return _finish(space, settings, paths, finished, ran=ran, stopped=stopped)


def _finish(
    space: SearchSpace,
    settings: HpoSettings,
    paths: StudyPaths,
    finished: list[FinishedTrial],
    *,
    ran: list[int],
    stopped: str,
) -> StudyOutcome:
    """Write best.yaml (and, multi-objective, the Pareto front) of a finished study."""
    best = write_best(paths.best, engine=settings.engine, trials=finished)
    front: list[FinishedTrial] = []
    if settings.multi_objective.enabled:
        from serhpo.hpo.pareto import write_pareto  # matplotlib only when asked for

        cost = settings.multi_objective.cost
        front = write_pareto(
            paths.out_dir,
            finished,
            space,
            title=f"{settings.engine}: validation BCA against {cost.replace('_', ' ')}",
            cost=cost,
        )
    log.info(
        "%s study: %d trials, best BCA %.4f (trial %d)",
        settings.engine,
        len(finished),
        best["value"],
        best["trial"],
    )
    return StudyOutcome(
        trials=finished, best=best, paths=paths, pareto=front, ran=ran, stopped=stopped
    )


def _check_meta(
    paths: StudyPaths,
    space: SearchSpace,
    settings: HpoSettings,
    *,
    trial_inputs: Mapping[str, Any] | None = None,
    restart_on_change: bool = False,
) -> None:
    """Record what the study started with; refuse (or set aside) a study started otherwise."""
    current = {
        "engine": settings.engine,
        "seed": settings.seed,
        "multi_objective": settings.multi_objective.enabled,
        "search_space": [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items()}
            for p in space
        ],
        "trial_inputs": json.loads(json.dumps(dict(trial_inputs or {}), sort_keys=True)),
    }
    if paths.meta.exists():
        started = yaml.safe_load(paths.meta.read_text()) or {}
        started.setdefault("trial_inputs", {})
        changed = [
            key
            for key in ("engine", "search_space", "multi_objective", "trial_inputs")
            if started.get(key) != current[key]
        ]
        if changed and restart_on_change:
            aside = paths.out_dir.with_name(
                f"{paths.out_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
            )
            paths.out_dir.rename(aside)
            log.warning(
                "%s was started with another %s; moved it to %s and starting afresh",
                paths.out_dir,
                " and ".join(changed),
                aside,
            )
        elif changed:
            key = changed[0]
            raise UserError(
                f"{paths.out_dir} holds a study started with {key} = {started.get(key)!r}; "
                f"this run asks for {current[key]!r}. Use another --out folder for the new "
                f"study, or delete {paths.out_dir} to start it afresh."
            )
        else:
            if started.get("seed") != settings.seed:
                log.warning(
                    "%s was started with seed %s; continuing it with seed %s",
                    paths.out_dir,
                    started.get("seed"),
                    settings.seed,
                )
            return
    paths.state.mkdir(parents=True, exist_ok=True)
    paths.meta.write_text(yaml.safe_dump(current, sort_keys=False))


def _budget_spent(settings: HpoSettings, n_trials: int, clock_origin: float) -> str | None:
    if settings.n_trials is not None and n_trials >= settings.n_trials:
        return f"trial budget of {settings.n_trials} reached"
    budget_min = settings.time_budget_min
    if budget_min is not None and time.time() - clock_origin >= budget_min * 60:
        return f"time budget of {settings.time_budget_min:g} min reached"
    return None


def _work(
    space: SearchSpace,
    objective: Objective,
    settings: HpoSettings,
    paths: StudyPaths,
    *,
    worker: int,
    per_fold: bool = False,
) -> tuple[list[int], str]:
    """One process's loop: ask and claim under the lock, run, log and tell under the lock.

    Returns:
        The trial numbers this process logged, and why it stopped.
    """
    trials_log = TrialsLog(paths.trials, space, per_fold=per_fold)
    engine = make_engine(space, settings, state_dir=paths.state, worker=worker)
    shared = engine.parallel
    rule = EarlyStopRule(settings.pruning)
    ran: list[int] = []
    try:
        with worker_slot(paths.state, worker):
            with file_lock(paths.lock):
                finished = trials_log.read()
                live_claims(paths.state, finished, me=worker)  # clears what dead workers left
                clock_origin = session_origin(paths.state, finished, me=worker)
                if not shared:
                    engine.replay(finished)
            progress = tqdm(
                total=settings.n_trials,
                initial=len(finished),
                desc=f"hpo {settings.engine}"
                + (f" worker {worker}" if settings.n_workers > 1 else ""),
                unit="trial",
                disable=settings.n_workers > 1,
            )
            while True:
                finished, running, spent, proposal = _propose(
                    engine, trials_log, settings, paths, worker=worker, clock_origin=clock_origin
                )
                if spent or proposal is None:
                    stopped = spent or (
                        "the grid is exhausted"
                        if not running
                        else f"the rest of the grid is running in workers "
                        f"{sorted(c.worker for c in running)}"
                    )
                    log.info("%s: %s", settings.engine, stopped)
                    break
                completed = [t.history for t in finished if t.status == TrialStatus.COMPLETE]
                trial = run_trial(
                    objective,
                    proposal,
                    engine=engine,
                    rule=rule,
                    completed_histories=completed,
                    deadline=(
                        None
                        if settings.time_budget_min is None
                        else clock_origin + settings.time_budget_min * 60
                    ),
                    clock_origin=clock_origin,
                    worker=worker,
                )
                trial = _record(trial, proposal, engine, trials_log, settings, paths, worker=worker)
                ran.append(trial.trial)
                progress.update(1)
                log.info(
                    "%s trial %d: %s BCA %.4f in %.1f s%s",
                    settings.engine,
                    trial.trial,
                    trial.status,
                    trial.value,
                    trial.trial_seconds,
                    f" ({trial.reason})" if trial.reason else "",
                )
            progress.close()
    finally:
        engine.close()
    return ran, stopped


def _propose(
    engine: Engine,
    trials_log: TrialsLog,
    settings: HpoSettings,
    paths: StudyPaths,
    *,
    worker: int,
    clock_origin: float,
) -> tuple[list[FinishedTrial], list[Claim], str | None, Proposal | None]:
    """Under the study lock: the trials so far, the running ones, whether the budget is spent,
    and (if not) the engine's next proposal, claimed for this worker."""
    with file_lock(paths.lock):
        finished = trials_log.read()
        running = live_claims(paths.state, finished, me=worker)
        spent = _budget_spent(settings, len(finished) + len(running), clock_origin)
        proposal = None
        if not spent:
            if engine.parallel:
                engine.sync(finished, running)
            proposal = engine.ask()
            if proposal is not None:
                write_claim(paths.state, Claim.of(worker, proposal))
    return finished, running, spent, proposal


def _record(
    trial: FinishedTrial,
    proposal: Proposal,
    engine: Engine,
    trials_log: TrialsLog,
    settings: HpoSettings,
    paths: StudyPaths,
    *,
    worker: int,
) -> FinishedTrial:
    """Under the study lock: log the trial (numbered), tell the engine, drop the claim and
    keep best.yaml up to date; return the trial with its number."""
    with file_lock(paths.lock):
        trial = trials_log.append(trial)
        if paths.dashboard is not None:
            paths.dashboard.record(trial)
        engine.tell(
            proposal,
            value=None if trial.status == TrialStatus.FAILED else trial.value,
            status=trial.status,
            seconds=trial.cost(settings.multi_objective.cost),
        )
        drop_claim(paths.state, worker)
        everything = trials_log.read()
        if best_trial(everything) is not None:
            write_best(paths.best, engine=settings.engine, trials=everything)
    return trial


def run_trial(
    objective: Objective,
    proposal: Proposal,
    *,
    engine: Engine,
    rule: EarlyStopRule,
    completed_histories: Sequence[Sequence[float]] = (),
    deadline: float | None = None,
    clock_origin: float | None = None,
    worker: int = 0,
) -> FinishedTrial:
    """Run one trial and describe how it ended (its ``trial`` number is set when logged).

    The reporter handed to the objective records each epoch's score and answers True (stop)
    when the trial is at chance level, when the engine's pruner (or the shared median rule)
    says so, or when the study's time budget has run out. An exception or a non-finite score
    makes the trial failed, with the reason; a :class:`UserError` (bad input, which every
    trial would meet) and ``KeyboardInterrupt`` stop the study.
    """
    # Over 60 lines: the reporter and the outcome below share the trial's stop state, and
    # the stop rules read best in the order they apply.
    history: list[float] = []
    stop_reason: str | None = None
    stop_epoch = 0

    def report(epoch: int, score: float) -> bool:
        nonlocal stop_reason, stop_epoch
        history.append(float(score))
        if stop_reason is not None:
            return True
        if not math.isfinite(score):  # diverged: the trial fails whatever pruning says
            stop_reason, stop_epoch = f"non-finite validation BCA after epoch {epoch}", epoch
            return True
        if rule.settings.enabled:
            engine.report(proposal, epoch, score)
        reason = rule.chance(epoch, score)
        if reason is None and rule.applies(epoch):
            if engine.native_pruning:
                if engine.should_prune(proposal, epoch):
                    reason = (
                        f"{engine.name}'s median pruner after {rule.settings.step} {epoch}: BCA "
                        f"{score:.3f} below the completed trials' median by more than "
                        f"{rule.settings.margin:g}"
                    )
            else:
                reason = rule.median(epoch, score, completed_histories)
        if reason is None and deadline is not None and time.time() >= deadline:
            reason = f"the study's time budget ran out after {rule.settings.step} {epoch}"
        stop_reason, stop_epoch = reason, epoch
        return reason is not None

    start = time.perf_counter()
    # A UserError (bad input or config: every trial would fail the same way) stops the study;
    # any other error fails this trial only.
    result = failed_on_error(
        lambda: objective(dict(proposal.params), report),
        what=f"trial {proposal.params}",
        prefix="",
    )
    seconds = time.perf_counter() - start
    if stop_reason is not None and len(history) > stop_epoch:
        log.warning(
            "the objective went on after the study asked it to stop (%s); the trial counts "
            "as run to its end",
            stop_reason,
        )
        stop_reason = None
    status, reason, value = _outcome(result, stop_reason)
    return FinishedTrial(
        trial=-1,
        params=dict(proposal.params),
        value=value,
        status=status,
        # As trials.csv records it (microseconds), so that an engine told this cost (Optuna's
        # multi-objective front) and a front read back from trials.csv agree.
        trial_seconds=round(seconds, 6),
        history=tuple(history or getattr(result, "history", ())),
        engine_trial=proposal.engine_trial,
        cumulative_seconds=seconds if clock_origin is None else time.time() - clock_origin,
        reason=reason,
        worker=worker,
        extra=dict(getattr(result, "extra", {}) or {}),
    )


def _outcome(result: Any, stop_reason: str | None) -> tuple[TrialStatus, str, float]:
    if not isinstance(result, TrialResult):
        return (
            TrialStatus.FAILED,
            f"the objective returned {type(result).__name__}, expected a TrialResult",
            math.nan,
        )
    if result.status == TrialStatus.FAILED:
        return TrialStatus.FAILED, result.reason or "failed", math.nan
    try:
        value = float(result.value)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        return (
            TrialStatus.FAILED,
            f"the objective returned a non-finite score ({result.value!r})",
            math.nan,
        )
    if stop_reason is not None:
        return TrialStatus.PRUNED, stop_reason, value
    if result.status == TrialStatus.PRUNED:
        return TrialStatus.PRUNED, result.reason or "pruned by the objective", value
    return TrialStatus.COMPLETE, result.reason, value
