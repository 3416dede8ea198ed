"""A finished study's files, read without its engines: best.yaml, and trials.csv as a table.

The writers are :mod:`serhpo.hpo.trials_log` (``trials.csv``, ``best.yaml``) and
:mod:`serhpo.hpo.pareto`; the study reads its trials back with
:meth:`~serhpo.hpo.trials_log.TrialsLog.read`, which needs the search space. The stages after a
study (retraining, speaker-CV folds, the report) read them here: this module imports no engine
and no search space, so their environments need neither.

Example:
    >>> read_best(Path("results/hpo/optuna/best.yaml"), missing_ok=True) is None
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from serhpo.errors import UserError
from serhpo.trial import TrialStatus

if TYPE_CHECKING:
    import pandas as pd


#: Columns every trials.csv must have for :func:`read_trials_table`.
REQUIRED_TRIAL_COLUMNS: tuple[str, ...] = ("trial", "value", "cumulative_seconds", "status")


def read_trials_table(path: Path) -> pd.DataFrame:
    """Read and check one study's trials.csv as a table (the report's reader; no search space).

    :meth:`TrialsLog.read` reads the same file into typed trials for a study that knows its
    search space; this reader keeps every column as the file has it (``param_<name>``,
    ``extra`` ...), numbers as floats and the status in lower case.

    Raises:
        UserError: a required column is missing, a number is not a number, a status is unknown
            or a trial number repeats.

    Example:
        >>> trials = read_trials_table(Path("results/hpo/ax/trials.csv"))  # doctest: +SKIP
        >>> trials["status"].unique().tolist()  # doctest: +SKIP
        ['complete', 'failed']
    """
    import pandas as pd  # the report's environment; the study needs no pandas

    try:
        trials = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UserError(
            f"{path}: cannot be read as CSV ({error}); rerun the hpo rule that writes it."
        ) from error
    missing = [c for c in REQUIRED_TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise UserError(
            f"{path}: columns {missing} are missing (found {list(trials.columns)}); expected at "
            f"least {list(REQUIRED_TRIAL_COLUMNS)} as written by `serhpo hpo`. Rerun that study."
        )
    for column in ("trial", "value", "cumulative_seconds", "trial_seconds"):
        if column not in trials.columns:
            continue
        try:
            trials[column] = pd.to_numeric(trials[column]).astype(float)
        except (ValueError, TypeError) as error:
            raise UserError(
                f"{path}: column {column!r} holds a value that is not a number ({error}); "
                "expected numbers (empty for a failed trial's value)."
            ) from error
    if trials["trial"].isna().any():
        raise UserError(f"{path}: a row has no trial number; expected an integer in every row.")
    trials["trial"] = trials["trial"].astype(int)
    duplicated = trials["trial"][trials["trial"].duplicated()].tolist()
    if duplicated:
        raise UserError(
            f"{path}: trial number(s) {duplicated} appear more than once; expected one row per "
            "trial. Remove the duplicate rows or rerun the study."
        )
    trials["status"] = trials["status"].astype(str).str.strip().str.lower()
    allowed = [s.value for s in TrialStatus]
    unknown = sorted(set(trials["status"]) - set(allowed))
    if unknown:
        raise UserError(f"{path}: status {unknown} found; expected one of {allowed}.")
    return trials


#: Keys a best.yaml holds for its readers (written by :func:`write_best`).
BEST_KEYS: tuple[str, ...] = ("engine", "trial", "params", "value", "metric")


def read_best(path: Path, *, missing_ok: bool = False, rule: str = "hpo") -> dict[str, Any] | None:
    """Read and check a study's best.yaml (the one reader of the file :func:`write_best` writes).

    Args:
        path: the file (``results/hpo/{engine}/best.yaml``, ``.../fold-{f}/best.yaml``).
        missing_ok: return None when the file does not exist (the report shows what exists).
        rule: the rule that writes it, named in the errors (``hpo``, ``hpo_cv``, ``fl_hpo``).

    Raises:
        UserError: when the file is missing (unless ``missing_ok``), not YAML, or lacks a key
            of :data:`BEST_KEYS` (or its ``params`` is not a mapping).

    Example:
        >>> read_best(Path("no/such/best.yaml"), missing_ok=True) is None
        True
    """
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return None
        raise UserError(
            f"best configuration {path} does not exist; expected the best.yaml of a finished "
            f"study. Run the {rule} rule first (it writes results/hpo/<engine>/.../best.yaml)."
        )
    try:
        best = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML ({error}); rerun the {rule} rule.") from None
    missing = [key for key in BEST_KEYS if not isinstance(best, dict) or key not in best]
    if missing or not isinstance(best["params"], dict):
        raise UserError(
            f"{path}: found {best!r}, which lacks {missing or ['params as a mapping']}; "
            f"expected a mapping with keys {', '.join(BEST_KEYS)} as written by `serhpo hpo`. "
            f"Rerun the {rule} rule."
        )
    return dict(best)
