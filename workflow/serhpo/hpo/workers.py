"""Several processes on one study: who is alive, which trial each is running, one study clock.

Workers of a study may be processes of one job (``hpo.n_workers`` inside ``serhpo hpo``) or
separate jobs on several hosts (``serhpo hpo --worker W``, one SLURM job each) that share the
study folder on a shared file system. They coordinate through files in
``engine_state/workers/``:

``{w}.lock``
    held with ``flock`` by the live process of worker ``w`` for as long as it runs. The kernel
    (or, on NFS, the server once the client's lease runs out) releases it when the process
    dies, so a free lock means a dead or finished worker.
``{w}.claim.yaml``
    the trial worker ``w`` is running now (its parameters and engine number), written under
    the study lock right after it was proposed and removed right after the trial was logged.

The budget counts logged trials plus the claims of live workers, so workers never overshoot
it. A claim whose worker is dead marks an interrupted trial: it is removed, and the engine
proposes that trial again (random and grid: the same index or point; Optuna: the parameters
re-queued), so a killed worker loses no trial and none is logged twice.

The study clock (``cumulative_seconds``, ``hpo.time_budget_min``) is shared: the first worker
of a session (no other worker alive) sets its origin after the trials already logged, the
others join it. :func:`run_worker_processes` starts a job's ``hpo.n_workers`` processes.

Example:
    >>> with worker_slot(Path("study/engine_state"), 1):  # doctest: +SKIP
    ...     live = live_claims(Path("study/engine_state"), finished=[], me=1)
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from serhpo.errors import UserError
from serhpo.hpo.engine import FinishedTrial, Proposal
from serhpo.hpo.space import Scalar

log = logging.getLogger(__name__)

#: Seconds a worker waits for its own slot before it concludes that a twin is running.
SLOT_WAIT_S = 10.0
#: SLURM variables recorded with each claim and in a worker's summary.
SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "SLURM_MEM_PER_NODE", "SLURM_JOB_GPUS")


def workers_dir(state_dir: Path) -> Path:
    """The folder of the worker locks and claims inside a study's ``engine_state``."""
    return state_dir / "workers"


def where() -> dict[str, Any]:
    """This process: host, pid and the SLURM job it runs in (None outside SLURM).

    Example:
        >>> sorted(where())[:3]
        ['host', 'pid', 'slurm_cpus_per_task']
    """
    found: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    for name in SLURM_VARIABLES:
        found[name.lower()] = os.environ.get(name)
    return found


@dataclass(frozen=True)
class Claim:
    """A trial a live (or dead) worker started and has not logged.

    Attributes:
        worker: the worker running it.
        params: its parameters.
        engine_trial: the engine's own number for it (random: the draw index, grid: the
            point's index, Optuna: the trial number).
        started: when it was proposed (seconds since the epoch).
        owner: host, pid and SLURM job of the process.
    """

    worker: int
    params: dict[str, Scalar]
    engine_trial: int | None = None
    started: float = 0.0
    owner: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, worker: int, proposal: Proposal) -> Claim:
        """The claim for a proposal this process is about to run."""
        return cls(worker, dict(proposal.params), proposal.engine_trial, time.time(), where())


def _claim_path(state_dir: Path, worker: int) -> Path:
    return workers_dir(state_dir) / f"{worker}.claim.yaml"


def write_claim(state_dir: Path, claim: Claim) -> None:
    """Record the trial a worker starts (call it under the study lock)."""
    path = _claim_path(state_dir, claim.worker)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(yaml.safe_dump(asdict(claim), sort_keys=False))
    os.replace(temporary, path)


def drop_claim(state_dir: Path, worker: int) -> None:
    """Forget a worker's running trial once it is logged (call it under the study lock)."""
    _claim_path(state_dir, worker).unlink(missing_ok=True)


def _read_claim(path: Path) -> Claim | None:
    try:
        content = yaml.safe_load(path.read_text()) or {}
        return Claim(**content)
    except (OSError, TypeError, yaml.YAMLError) as error:
        log.warning("ignoring the unreadable claim %s (%s)", path, error)
        return None


def _lock_path(state_dir: Path, worker: int) -> Path:
    return workers_dir(state_dir) / f"{worker}.lock"


def is_alive(state_dir: Path, worker: int) -> bool:
    """True while the process of ``worker`` holds its slot.

    Never ask it about this process' own worker: on NFS, closing a second handle of a file
    drops every lock the process holds on it.
    """
    path = _lock_path(state_dir, worker)
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def known_workers(state_dir: Path) -> list[int]:
    """Every worker that ever ran on the study (each left its lock file)."""
    folder = workers_dir(state_dir)
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.lock") if p.stem.isdigit())


@contextmanager
def worker_slot(state_dir: Path, worker: int, *, wait_s: float = SLOT_WAIT_S) -> Iterator[None]:
    """Hold worker ``worker``'s slot for the ``with`` block; refuse a twin.

    Raises:
        UserError: when another live process holds the slot after ``wait_s`` seconds (two
            runs started the same worker of the same study).
    """
    if worker < 0:
        raise UserError(f"--worker: found {worker}; expected a worker index >= 0.")
    path = _lock_path(state_dir, worker)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path, "a+")  # noqa: SIM115 (closed in the finally below)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    owner = handle.read().strip() or "another process"
                    raise UserError(
                        f"worker {worker} of the study in {state_dir.parent} is running already "
                        f"({owner}). Start each worker index once (--worker 0, 1, ...), or wait "
                        f"for that process to end."
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(" ".join(f"{k}={v}" for k, v in where().items() if v is not None) + "\n")
        handle.flush()
        yield
    finally:
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()


def live_claims(state_dir: Path, finished: Sequence[FinishedTrial], *, me: int) -> list[Claim]:
    """The trials other live workers are running; clears the claims of dead workers.

    Call it under the study lock, holding this process' own slot. A claim of this worker
    is a leftover of an earlier run of it (it runs nothing now) and a claim of a dead worker
    is an interrupted trial: both are removed, and the engine will propose the trial again.
    A leftover whose trial reached trials.csv (the worker died between logging the trial and
    removing its claim) is removed silently.
    """
    folder = workers_dir(state_dir)
    if not folder.is_dir():
        return []
    logged = {t.engine_trial for t in finished if t.engine_trial is not None}
    live: list[Claim] = []
    for path in sorted(folder.glob("*.claim.yaml")):
        claim = _read_claim(path)
        if claim is None:
            path.unlink(missing_ok=True)
            continue
        if claim.worker != me and is_alive(state_dir, claim.worker):
            live.append(claim)
            continue
        if claim.engine_trial not in logged:
            owner = ", ".join(f"{k} {v}" for k, v in claim.owner.items() if v is not None)
            log.warning(
                "worker %d (%s) stopped while running trial %s %s; it is run again",
                claim.worker,
                owner or "unknown process",
                claim.engine_trial,
                claim.params,
            )
        path.unlink(missing_ok=True)
    return live


def session_origin(state_dir: Path, finished: Sequence[FinishedTrial], *, me: int) -> float:
    """The study clock's origin (``time.time()`` at cumulative second 0) for this worker.

    Call it under the study lock, holding this process' own slot. When another worker is
    alive, join its session; otherwise start one that continues after the trials logged
    (so ``cumulative_seconds`` go on over resumes, not counting the pauses between them).
    """
    path = state_dir / "session.yaml"
    others = [w for w in known_workers(state_dir) if w != me]
    if path.exists() and any(is_alive(state_dir, w) for w in others):
        return float((yaml.safe_load(path.read_text()) or {})["origin"])
    base = max((t.cumulative_seconds for t in finished), default=0.0)
    origin = time.time() - base
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(
        yaml.safe_dump({"origin": origin, "started_by": {"worker": me, **where()}})
    )
    os.replace(temporary, path)
    return origin


# ---------------------------------------------------------------- worker processes


def run_worker_processes(
    work: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    n_workers: int,
    name: str,
    **options: Any,
) -> None:
    """Run ``work(*args, worker=W, **options)`` in ``n_workers`` processes and wait for them.

    The processes are spawned (not forked: the parent may hold threads, torch's or BLAS's,
    that fork would copy broken), so ``work`` and its arguments must be picklable; each
    logs like the parent, its lines marked with its worker number. A SIGTERM to the parent
    (how a scheduler stops a job) takes the workers down too.

    Raises:
        RuntimeError: when a worker stopped with an error (running the study again
            resumes it).

    Example:
        >>> run_worker_processes(_work, (space, objective, settings, paths), n_workers=2,
        ...                      name="hpo-random-worker")  # doctest: +SKIP
    """
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_worker_entry,
            args=(work, args),
            kwargs={
                "worker": worker,
                "log_level": logging.getLogger().getEffectiveLevel(),
                "options": options,
            },
            name=f"{name}-{worker}",
        )
        for worker in range(n_workers)
    ]
    # A scheduler stops a job with SIGTERM: take the workers down too, rather than leave them
    # running trials that a resumed study would count as interrupted.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main_thread else None
    try:
        for process in workers:
            process.start()
        for process in workers:
            process.join()
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        for process in workers:
            if process.is_alive():
                process.terminate()
                process.join()
    failed = [p.name for p in workers if p.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"worker processes {failed} stopped with an error (see the log above); run the "
            f"study again to resume it"
        )


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _worker_entry(
    work: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    worker: int,
    log_level: int,
    options: dict[str, Any],
) -> None:
    """A worker process: log like the parent, then run ``work``."""
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s %(levelname)s %(name)s [worker {worker}]: %(message)s",
    )
    work(*args, worker=worker, **options)
