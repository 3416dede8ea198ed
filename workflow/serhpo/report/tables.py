"""The paper's Tables 3-6, computed from the studies and evaluations of this run.

Each table is a tidy :class:`pandas.DataFrame` (written as CSV with every number at full
precision, so that it agrees exactly with trials.csv and the evaluation JSONs) and a Markdown
rendering for reading (:mod:`serhpo.report.markdown`). Rows with ``source`` =
``paper`` hold the paper's own figures (:mod:`serhpo.report.paper`).

A trial is *usable* when it is not failed and has a value (complete or pruned trials count: a
pruned trial's value is its last validation BCA). Trials are taken in the order they finished
(``cumulative_seconds``, then trial number), which is the trial order of a sequential study.

Example:
    >>> table = time_to_threshold_table(studies, settings=ReportSettings())  # doctest: +SKIP
    >>> table.loc[table["engine"] == "ax", ["threshold", "minutes", "trial"]]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from serhpo.hpo.settings import ENGINE_NAMES
from serhpo.report import paper
from serhpo.report.html import write_page
from serhpo.report.inputs import (
    PARAM_PREFIX,
    PRETRAINED_MODEL,
    Evaluation,
    ReportSettings,
    Study,
)
from serhpo.trial import TrialStatus

logger = logging.getLogger(__name__)

SOURCE_RUN = "this run"
SOURCE_PAPER = "paper"

TABLE3_STEM = "table3_time_to_threshold"
TABLE4_STEM = "table4_best_config"
TABLE5_STEM = "table5_efficiency"
TABLE6_STEM = "table6_zero_shot"


def model_order(names: Iterable[str]) -> list[str]:
    """Sort model or engine names: ``pretrained``, the engines in the paper's order, the rest.

    Example:
        >>> model_order(["random", "zeta", "ax", "pretrained", "optuna"])
        ['pretrained', 'ax', 'optuna', 'random', 'zeta']
    """
    known = (PRETRAINED_MODEL, *ENGINE_NAMES)
    names = set(names)
    return [n for n in known if n in names] + sorted(names - set(known))


def trial_progress(trials: pd.DataFrame) -> pd.DataFrame:
    """A study's trials in the order they finished, with minutes and the best-so-far value.

    Args:
        trials: a study's trials.csv as read by :func:`~serhpo.report.inputs.read_trials`.

    Returns:
        The rows sorted by finishing time, with added columns ``minutes``
        (``cumulative_seconds / 60``), ``usable`` (not failed, value present), ``best_so_far``
        (running maximum of the usable values; NaN before the first) and ``trials_run``
        (how many trials had finished, this one included).

    Example:
        >>> rows = pd.DataFrame({"trial": [1, 2, 3], "value": [0.5, np.nan, 0.4],
        ...     "cumulative_seconds": [60.0, 90.0, 150.0],
        ...     "status": ["complete", "failed", "complete"]})
        >>> trial_progress(rows)["best_so_far"].tolist()
        [0.5, 0.5, 0.5]
    """
    ordered = trials.sort_values("trial", kind="stable")
    ordered = ordered.sort_values("cumulative_seconds", kind="stable", na_position="last")
    ordered = ordered.reset_index(drop=True)
    ordered["minutes"] = ordered["cumulative_seconds"] / 60.0
    ordered["usable"] = (ordered["status"] != TrialStatus.FAILED.value) & ordered["value"].notna()
    ordered["best_so_far"] = ordered["value"].where(ordered["usable"]).cummax().ffill()
    ordered["trials_run"] = np.arange(1, len(ordered) + 1)
    return ordered


def best_trial(study: Study) -> pd.Series | None:
    """The row of a study's best usable trial (None when no trial is usable).

    best.yaml's trial is taken when it names a usable trial (the final model was retrained from
    it); otherwise the usable trial with the highest value, the earliest on a tie.

    Example:
        >>> best_trial(study)["trial"]  # doctest: +SKIP
        7
    """
    progress = trial_progress(study.trials)
    usable = progress[progress["usable"]]
    if usable.empty:
        return None
    top = usable.loc[usable["value"].idxmax()]
    if study.best is not None:
        chosen = usable[usable["trial"] == study.best.get("trial")]
        if not chosen.empty:
            if chosen.iloc[0]["value"] < top["value"]:
                logger.info(
                    "%s: best.yaml names trial %s (BCA %.4f) although trial %s scored %.4f; "
                    "reporting best.yaml's trial, the one the final model was retrained from",
                    study.engine,
                    chosen.iloc[0]["trial"],
                    chosen.iloc[0]["value"],
                    top["trial"],
                    top["value"],
                )
            return chosen.iloc[0]
        logger.warning(
            "%s: best.yaml names trial %r, which is not a usable trial of %s; reporting the "
            "highest-scoring trial %s instead",
            study.engine,
            study.best.get("trial"),
            study.path,
            top["trial"],
        )
    return top


def time_to_threshold_table(studies: Sequence[Study], *, settings: ReportSettings) -> pd.DataFrame:
    """Table 3: when each engine's best-so-far validation BCA first exceeded each threshold.

    Returns:
        One row per engine and threshold: ``protocol``, ``source``, ``engine``, ``threshold``,
        ``reached``, ``minutes`` (cumulative minutes at the end of that trial), ``trial`` (its
        number in trials.csv) and ``trials_run`` (trials finished by then); NaN when not reached.

    Example:
        >>> time_to_threshold_table([s], settings=settings)["reached"].tolist()  # doctest: +SKIP
        [True, False]
    """
    rows = []
    by_engine = {study.engine: study for study in studies}
    for engine in model_order(by_engine):
        progress = trial_progress(by_engine[engine].trials)
        for threshold in settings.thresholds:
            above = progress[progress["best_so_far"] > threshold]
            first = above.iloc[0] if not above.empty else None
            rows.append(
                {
                    "protocol": settings.protocol,
                    "source": SOURCE_RUN,
                    "engine": engine,
                    "threshold": threshold,
                    "reached": first is not None,
                    "minutes": first["minutes"] if first is not None else math.nan,
                    "trial": first["trial"] if first is not None else pd.NA,
                    "trials_run": first["trials_run"] if first is not None else pd.NA,
                }
            )
    if settings.paper_figures:
        for engine, by_threshold in paper.PAPER_TIME_TO_THRESHOLD.items():
            for threshold in settings.thresholds:
                match = [t for t in by_threshold if math.isclose(t, threshold)]
                if not match:
                    continue
                minutes, trial = by_threshold[match[0]]
                rows.append(
                    {
                        "protocol": paper.PAPER_PROTOCOL,
                        "source": SOURCE_PAPER,
                        "engine": engine,
                        "threshold": threshold,
                        "reached": True,
                        "minutes": minutes,
                        # The paper counts trials from 1; "trial" is numbered as in
                        # trials.csv (from 0) in every row, so its trial k is k - 1 here.
                        "trial": trial - 1,
                        "trials_run": trial,
                    }
                )
    columns = ["protocol", "source", "engine", "threshold", "reached", "minutes", "trial"]
    table = pd.DataFrame(rows, columns=[*columns, "trials_run"])
    for column in ("trial", "trials_run"):
        table[column] = table[column].astype("Int64")
    table["reached"] = table["reached"].astype(bool)
    return _side_by_side(table, "engine", model_order(table["engine"]), then="threshold")


def best_config_table(
    studies: Sequence[Study], evaluations: Sequence[Evaluation], *, settings: ReportSettings
) -> pd.DataFrame:
    """Table 4: each engine's best trial, its parameters and validation BCA, and its test BCA.

    The test BCA comes from the engine's final model on its home corpus (the evaluation that is
    not zero-shot), with its 95 % confidence interval; NaN when that evaluation is missing.

    Returns:
        One row per engine: ``protocol``, ``source``, ``engine``, ``trial``, one ``param_<name>``
        column per parameter, ``valid_bca``, ``test_corpus``, ``test_part``, ``test_n``,
        ``test_bca``, ``test_bca_ci95_low``, ``test_bca_ci95_high``.

    Example:
        >>> best_config_table(studies, evals, settings=settings)["valid_bca"]  # doctest: +SKIP
    """
    names = {name for study in studies for name in study.param_names}
    if settings.paper_figures:
        names |= {k for config in paper.PAPER_BEST_CONFIG.values() for k in config} - {"bca"}
    params = [n for n in settings.param_order if n in names] + sorted(
        names - set(settings.param_order)
    )
    rows = []
    by_engine = {study.engine: study for study in studies}
    for engine in model_order(by_engine):
        study = by_engine[engine]
        best = best_trial(study)
        row: dict[str, object] = {
            "protocol": settings.protocol,
            "source": SOURCE_RUN,
            "engine": engine,
            "trial": best["trial"] if best is not None else pd.NA,
        }
        for name in params:
            column = PARAM_PREFIX + name
            row[column] = best[column] if best is not None and column in best.index else math.nan
        row["valid_bca"] = best["value"] if best is not None else math.nan
        test = _home_evaluation(engine, evaluations, settings=settings)
        row.update(
            {
                "test_corpus": test.corpus if test else None,
                "test_part": test.part if test else None,
                "test_n": test.n if test else pd.NA,
                "test_bca": test.bca if test else math.nan,
                "test_bca_ci95_low": test.bca_ci95[0] if test else math.nan,
                "test_bca_ci95_high": test.bca_ci95[1] if test else math.nan,
            }
        )
        rows.append(row)
    if settings.paper_figures:
        for engine, config in paper.PAPER_BEST_CONFIG.items():
            row = {
                "protocol": paper.PAPER_PROTOCOL,
                "source": SOURCE_PAPER,
                "engine": engine,
                "trial": pd.NA,
            }
            row.update({PARAM_PREFIX + n: config.get(n, math.nan) for n in params})
            # The paper selected on the split it reports: its BCA is a selection score.
            row.update({"valid_bca": config["bca"], "test_bca": math.nan})
            rows.append(row)
    columns = [
        "protocol",
        "source",
        "engine",
        "trial",
        *(PARAM_PREFIX + n for n in params),
        "valid_bca",
        "test_corpus",
        "test_part",
        "test_n",
        "test_bca",
        "test_bca_ci95_low",
        "test_bca_ci95_high",
    ]
    table = pd.DataFrame(rows, columns=columns)
    for column in ("trial", "test_n"):
        table[column] = table[column].astype("Int64")
    return _side_by_side(table, "engine", model_order(table["engine"]))


def efficiency_table(studies: Sequence[Study], *, settings: ReportSettings) -> pd.DataFrame:
    """Table 5: best validation BCA, the minutes to reach it, E = BCA / minutes, trial counts.

    E follows the paper: the best validation BCA divided by the wall-clock minutes the study had
    run when the trial that scored it finished. ``total_minutes`` is the whole study's.

    Returns:
        One row per engine: ``protocol``, ``source``, ``engine``, ``best_trial``,
        ``best_valid_bca``, ``minutes_to_best``, ``efficiency``, ``total_minutes``,
        ``n_trials``, ``n_complete``, ``n_failed``, ``n_pruned``.

    Example:
        >>> efficiency_table(studies, settings=ReportSettings())["efficiency"]  # doctest: +SKIP
    """
    rows = []
    by_engine = {study.engine: study for study in studies}
    for engine in model_order(by_engine):
        study = by_engine[engine]
        best = best_trial(study)
        minutes = best["cumulative_seconds"] / 60.0 if best is not None else math.nan
        bca = best["value"] if best is not None else math.nan
        status = study.trials["status"]
        rows.append(
            {
                "protocol": settings.protocol,
                "source": SOURCE_RUN,
                "engine": engine,
                "best_trial": best["trial"] if best is not None else pd.NA,
                "best_valid_bca": bca,
                "minutes_to_best": minutes,
                "efficiency": bca / minutes if minutes > 0 else math.nan,
                "total_minutes": study.trials["cumulative_seconds"].max() / 60.0,
                "n_trials": len(study.trials),
                "n_complete": int((status == TrialStatus.COMPLETE.value).sum()),
                "n_failed": int((status == TrialStatus.FAILED.value).sum()),
                "n_pruned": int((status == TrialStatus.PRUNED.value).sum()),
            }
        )
    if settings.paper_figures:
        for engine, figures in paper.PAPER_EFFICIENCY.items():
            rows.append(
                {
                    "protocol": paper.PAPER_PROTOCOL,
                    "source": SOURCE_PAPER,
                    "engine": engine,
                    "best_trial": pd.NA,
                    "best_valid_bca": figures["bca"],
                    "minutes_to_best": _nan(figures["minutes"]),
                    "efficiency": _nan(figures["efficiency"]),
                    "total_minutes": math.nan,
                    "n_trials": pd.NA,
                    "n_complete": pd.NA,
                    "n_failed": pd.NA,
                    "n_pruned": pd.NA,
                }
            )
    table = pd.DataFrame(
        rows,
        columns=[
            "protocol",
            "source",
            "engine",
            "best_trial",
            "best_valid_bca",
            "minutes_to_best",
            "efficiency",
            "total_minutes",
            "n_trials",
            "n_complete",
            "n_failed",
            "n_pruned",
        ],
    )
    for column in ("best_trial", "n_trials", "n_complete", "n_failed", "n_pruned"):
        table[column] = table[column].astype("Int64")
    return _side_by_side(table, "engine", model_order(table["engine"]))


def zero_shot_table(evaluations: Sequence[Evaluation], *, settings: ReportSettings) -> pd.DataFrame:
    """Table 6: every model's BCA on every corpus, ``pretrained`` (zero-shot) beside the tuned.

    Returns:
        One row per corpus and model: ``protocol`` (the evaluation's), ``source``, ``corpus``,
        ``model``, ``zero_shot``, ``part``, ``n``, ``bca``, ``bca_ci95_low``, ``bca_ci95_high``,
        ``accuracy``, ``macro_f1``, ``label_set`` (``shared``: a zero-shot score on the labels
        the corpora share; ``all``), ``labels`` (those scored, space-separated), ``chance``,
        ``bca_unrestricted`` (all outputs, every utterance, beside a shared-label score),
        ``normalise`` and ``loudness``. Paper rows use the models ``pretrained`` and ``tuned``.

    Example:
        >>> zero_shot_table(evals, settings=settings)[["corpus", "model", "bca"]]  # doctest: +SKIP
    """
    rows = []
    for corpus in _corpus_order({e.corpus for e in evaluations}, settings):
        here = {e.model: e for e in evaluations if e.corpus == corpus}
        for model in model_order(here):
            e = here[model]
            rows.append(
                {
                    "protocol": e.protocol,
                    "source": SOURCE_RUN,
                    "corpus": corpus,
                    "model": model,
                    "zero_shot": e.zero_shot,
                    "part": e.part,
                    "n": e.n,
                    "bca": e.bca,
                    "bca_ci95_low": e.bca_ci95[0],
                    "bca_ci95_high": e.bca_ci95[1],
                    "accuracy": e.accuracy,
                    "macro_f1": e.macro_f1,
                    "label_set": e.label_set,
                    "labels": " ".join(e.labels),
                    "chance": e.chance,
                    "bca_unrestricted": e.bca_unrestricted,
                    "normalise": e.normalise,
                    "loudness": e.loudness,
                }
            )
    if settings.paper_figures:
        for corpus, (zero_shot_bca, tuned_bca) in paper.PAPER_ZERO_SHOT.items():
            for model, bca in ((PRETRAINED_MODEL, zero_shot_bca), ("tuned", tuned_bca)):
                rows.append(
                    {
                        "protocol": paper.PAPER_PROTOCOL,
                        "source": SOURCE_PAPER,
                        "corpus": corpus,
                        "model": model,
                        "zero_shot": model == PRETRAINED_MODEL or corpus != "emodb",
                        "bca": bca,
                    }
                )
    columns = [
        "protocol",
        "source",
        "corpus",
        "model",
        "zero_shot",
        "part",
        "n",
        "bca",
        "bca_ci95_low",
        "bca_ci95_high",
        "accuracy",
        "macro_f1",
        "label_set",
        "labels",
        "chance",
        "bca_unrestricted",
        "normalise",
        "loudness",
    ]
    table = pd.DataFrame(rows, columns=columns)
    table["n"] = table["n"].astype("Int64")
    return _side_by_side(table, "corpus", _corpus_order(set(table["corpus"]), settings))


def write_table(table: pd.DataFrame, markdown: str, *, out_dir: Path, stem: str) -> list[Path]:
    """Write ``{stem}.csv`` (full precision), ``{stem}.md`` and ``{stem}.html`` under ``out_dir``.

    The HTML page renders the Markdown (same rows and notes) for Snakemake's report, which
    shows HTML inline.

    Example:
        >>> [p.name for p in write_table(table, text, out_dir=Path("t"), stem="table5")]
        ... # doctest: +SKIP
        ['table5.csv', 'table5.md', 'table5.html']
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(markdown)
    return [csv_path, md_path, write_page(markdown, out_dir / f"{stem}.html")]


def _home_evaluation(
    engine: str, evaluations: Sequence[Evaluation], *, settings: ReportSettings
) -> Evaluation | None:
    """The engine's final model on its home corpus' test part (tune corpora preferred)."""
    home = [e for e in evaluations if e.model == engine and not e.zero_shot]
    home.sort(key=lambda e: (e.corpus not in settings.tune_corpora, e.corpus))
    if len(home) > 1:
        logger.info(
            "%s: %d in-corpus evaluations; Table 4 reports %s", engine, len(home), home[0].corpus
        )
    return home[0] if home else None


def _corpus_order(corpora: set[str], settings: ReportSettings) -> list[str]:
    return [c for c in settings.corpora if c in corpora] + sorted(corpora - set(settings.corpora))


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _side_by_side(
    table: pd.DataFrame, key: str, order: Sequence[str], *, then: str | None = None
) -> pd.DataFrame:
    """Sort rows by ``key`` in ``order``, this run's row before the paper's, then by ``then``.

    Rows keep their original order within a group (stable sort), so a table's own row order
    (models within a corpus) survives.
    """
    rank = {name: i for i, name in enumerate(order)}
    sort = pd.DataFrame(
        {
            "key": table[key].map(rank),
            "source": (table["source"] != SOURCE_RUN).astype(int),
            "then": table[then] if then else 0,
        }
    )
    index = sort.sort_values(["key", "source", "then"], kind="stable").index
    return table.loc[index].reset_index(drop=True)
