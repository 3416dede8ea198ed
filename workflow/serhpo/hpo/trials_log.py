"""A study's record: trials.csv (one row per finished trial, written at once) and best.yaml.

trials.csv is the study's single source of truth: a restarted study reads it back, keeps every
row and restores its engine from them. Each row is appended, flushed and fsync'ed as soon as
its trial finishes, under a file lock shared by all worker processes, so a kill loses at most
the trials that were running.

A cross-validation study (one outer fold's study, :mod:`serhpo.crossval`) has one more column,
``fold_values``: the BCA of each inner fold, ``;``-separated, whose mean is ``value``; its
``history`` holds the running mean after each inner fold.

Example:
    >>> from serhpo.hpo.space import DEFAULT_SEARCH_SPACE, SearchSpace
    >>> log = TrialsLog(Path("trials.csv"), SearchSpace.from_config(DEFAULT_SEARCH_SPACE))
    >>> log.columns[:3]
    ['trial', 'param_lr', 'param_epochs']
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from serhpo.errors import UserError
from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.settings import METRIC
from serhpo.hpo.space import SearchSpace
from serhpo.trial import TrialStatus

#: Columns after the ``param_<name>`` ones, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "value",
    "trial_seconds",
    "cumulative_seconds",
    "status",
    "reason",
    "history",
    "engine_trial",
    "worker",
    "extra",
)
#: The per-inner-fold scores of a cross-validation study, after ``value`` (from
#: ``extra["fold_values"]`` of the trial).
FOLD_COLUMN = "fold_values"


def format_history(history: Sequence[float]) -> str:
    """Per-epoch validation BCA as a compact string.

    Example:
        >>> format_history([0.142857, 0.5, 0.81234567])
        '0.142857;0.5;0.812346'
    """
    return ";".join(f"{score:.6g}" for score in history)


def parse_history(text: str) -> tuple[float, ...]:
    """The inverse of :func:`format_history`.

    Example:
        >>> parse_history("0.25;0.5")
        (0.25, 0.5)
    """
    return tuple(float(part) for part in text.split(";") if part)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    Worker processes that share a study take it around "check the budget and ask" and around
    "append a row", so trial numbers are unique and the budget is met exactly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class TrialsLog:
    """Reads and appends trials.csv for one search space.

    Args:
        path: the CSV file (created with its header on the first append).
        space: the study's space; its ``param_<name>`` columns follow ``trial``.
        per_fold: a cross-validation study: a new file gets the :data:`FOLD_COLUMN` column
            (an existing file keeps its own header; either kind is read).
    """

    def __init__(self, path: Path, space: SearchSpace, *, per_fold: bool = False) -> None:
        self.path = path
        self.space = space
        self.columns = ["trial", *space.columns, *RESULT_COLUMNS]
        self.fold_columns = _with_fold_column(self.columns)
        self.per_fold = per_fold

    def _header(self) -> list[str]:
        """The columns of the file on disk, else of a new file."""
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as stream:
                first = next(csv.reader(stream), None)
            if first == self.fold_columns:
                return self.fold_columns
            return self.columns
        return self.fold_columns if self.per_fold else self.columns

    def read(self) -> list[FinishedTrial]:
        """Every finished trial, in file order (empty when the file does not exist yet).

        Raises:
            UserError: when the file was written for another search space or is damaged.
        """
        if not self.path.exists():
            return []
        with open(self.path, newline="") as stream:
            reader = csv.DictReader(stream)
            if reader.fieldnames not in (self.columns, self.fold_columns):
                raise UserError(
                    f"{self.path} has columns {reader.fieldnames}, but the search space needs "
                    f"{self.columns}. The search space changed since the study started: restore "
                    f"it, or start a new study in another --out folder."
                )
            trials = []
            for line, row in enumerate(reader, start=2):
                try:
                    trials.append(self._parse(row))
                except (ValueError, KeyError) as error:
                    raise UserError(
                        f"{self.path}, line {line}: {error}. The row does not match the search "
                        f"space; fix or delete the row (the study reruns that trial)."
                    ) from error
        return trials

    def _parse(self, row: dict[str, str]) -> FinishedTrial:
        params = {
            param.name: param.coerce(row[param.column]) for param in self.space if row[param.column]
        }
        extra = json.loads(row["extra"]) if row["extra"] else {}
        if row.get(FOLD_COLUMN):
            extra[FOLD_COLUMN] = list(parse_history(row[FOLD_COLUMN]))
        return FinishedTrial(
            trial=int(row["trial"]),
            params=self.space.check(params),
            value=float(row["value"]) if row["value"] else math.nan,
            status=TrialStatus(row["status"]),
            trial_seconds=float(row["trial_seconds"]),
            history=parse_history(row["history"]),
            engine_trial=int(row["engine_trial"]) if row["engine_trial"] else None,
            cumulative_seconds=float(row["cumulative_seconds"]),
            reason=row["reason"],
            worker=int(row["worker"] or 0),
            extra=extra,
        )

    def append(self, trial: FinishedTrial) -> FinishedTrial:
        """Append one row, numbered after the rows already there; flush and fsync it.

        Call it under :func:`file_lock` when several processes share the file.

        Returns:
            The trial with its ``trial`` number set.
        """
        numbered = replace(trial, trial=self._count_rows())
        new = not self.path.exists() or self.path.stat().st_size == 0
        columns = self._header()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(self._row(numbered, columns))
            stream.flush()
            os.fsync(stream.fileno())
        return numbered

    def write(self, trials: Sequence[FinishedTrial]) -> None:
        """Replace the file with these trials, numbers kept (e.g. pareto.csv); atomic."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        per_fold = self.per_fold or any(FOLD_COLUMN in t.extra for t in trials)
        columns = self.fold_columns if per_fold else self.columns
        with open(temporary, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self._row(trial, columns) for trial in trials)
        os.replace(temporary, self.path)

    def _count_rows(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, newline="") as stream:
            return max(0, sum(1 for _ in csv.reader(stream)) - 1)

    def _row(self, trial: FinishedTrial, columns: Sequence[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"trial": trial.trial}
        extra = dict(trial.extra)
        if FOLD_COLUMN in columns:
            row[FOLD_COLUMN] = format_history(extra.pop(FOLD_COLUMN, None) or ())
        for param in self.space:
            row[param.column] = (
                _text(trial.params[param.name]) if param.name in trial.params else ""
            )
        row.update(
            value="" if math.isnan(trial.value) else repr(float(trial.value)),
            trial_seconds=f"{trial.trial_seconds:.6f}",
            cumulative_seconds=f"{trial.cumulative_seconds:.3f}",
            status=str(trial.status),
            reason=" ".join(trial.reason.split()),  # one line, whatever the exception said
            history=format_history(trial.history),
            engine_trial="" if trial.engine_trial is None else trial.engine_trial,
            worker=trial.worker,
            extra=json.dumps(extra, sort_keys=True, default=str) if extra else "",
        )
        return row


def _with_fold_column(columns: Sequence[str]) -> list[str]:
    at = list(columns).index("value") + 1
    return [*columns[:at], FOLD_COLUMN, *columns[at:]]


def _text(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def best_trial(trials: Sequence[FinishedTrial]) -> FinishedTrial | None:
    """The complete trial with the highest value (pruned trials only when none completed).

    A pruned trial's value is a partial score, so it competes only when nothing finished.

    Example:
        >>> a = FinishedTrial(0, {"lr": 1e-5}, 0.8, TrialStatus.COMPLETE)
        >>> b = FinishedTrial(1, {"lr": 1e-4}, 0.9, TrialStatus.PRUNED)
        >>> best_trial([a, b]).trial
        0
    """
    for status in (TrialStatus.COMPLETE, TrialStatus.PRUNED):
        scored = [t for t in trials if t.status == status and not math.isnan(t.value)]
        if scored:
            return max(scored, key=lambda t: (t.value, -t.trial))
    return None


def write_best(path: Path, *, engine: str, trials: Sequence[FinishedTrial]) -> dict[str, Any]:
    """Write best.yaml (atomically): engine, trial, params, value and the metric's name.

    Returns:
        What was written.

    Raises:
        UserError: when no trial has a usable score.
    """
    best = best_trial(trials)
    if best is None:
        reasons = sorted({t.reason for t in trials if t.reason})[:3]
        raise UserError(
            f"none of the {len(trials)} trials of the {engine} study has a score, so there is no "
            f"best configuration (reasons: {reasons or 'none given'}). See trials.csv beside "
            f"{path}; fix the objective or the search space and run the study again."
        )
    content = {
        "engine": engine,
        "metric": METRIC,
        "direction": "maximize",
        "trial": best.trial,
        "value": float(best.value),
        "status": str(best.status),
        "params": {name: _plain(value) for name, value in best.params.items()},
        "n_trials": len(trials),
        "cumulative_seconds": round(max(t.cumulative_seconds for t in trials), 3),
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(yaml.safe_dump(content, sort_keys=False))
    os.replace(temporary, path)
    return content


def _plain(value: Any) -> Any:
    """A YAML-safe Python scalar (no numpy types)."""
    return value.item() if hasattr(value, "item") else value
