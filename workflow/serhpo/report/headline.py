"""The headline table: the pooled speaker cross-validation BCA per engine, beside the single split.

With ``split.folds`` set (speaker strategy), the headline number of each engine is the BCA of
every outer fold's held-out predictions pooled (``results/cv/{engine}/pooled.json``), with a
95 % interval from a bootstrap over speakers. The single split's test BCA (the home corpus'
evaluation, an utterance bootstrap interval) stays beside it, labelled "single split (paper
protocol)": one split, selection on one validation part, as the paper did. Without folds the
table holds the single-split rows only.

Example:
    >>> table = headline_table([read_pooled(Path("results/cv/optuna/pooled.json"))],
    ...                        evaluations, settings=settings)  # doctest: +SKIP
    >>> table[["engine", "protocol", "bca"]].head(2)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from serhpo.errors import UserError
from serhpo.report.inputs import Evaluation, ReportSettings
from serhpo.report.tables import model_order

HEADLINE_STEM = "headline"
#: The single split's label in the headline.
SINGLE_SPLIT = "single split (paper protocol)"
#: The keys the report reads from pooled.json.
POOLED_KEYS = ("engine", "protocol", "n", "n_speakers", "bca", "bca_ci95", "ci_method")


def read_pooled(path: Path) -> dict[str, Any]:
    """Read and check a ``results/cv/{engine}/pooled.json`` (``serhpo cv-pool``).

    Raises:
        UserError: not JSON, or a key the report needs is missing.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: cannot be read as JSON ({error}); rerun cv_pool.") from error
    missing = [key for key in POOLED_KEYS if key not in data]
    if missing:
        raise UserError(
            f"{path}: keys {missing} are missing; expected {list(POOLED_KEYS)} as written by "
            "`serhpo cv-pool`. Rerun the cv_pool rule."
        )
    return {**data, "path": str(path)}


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def headline_table(
    pooled: Sequence[Mapping[str, Any]],
    evaluations: Sequence[Evaluation],
    *,
    settings: ReportSettings,
) -> pd.DataFrame:
    """One row per engine and protocol: speaker CV (pooled) first, then the single split.

    Columns: ``engine``, ``protocol``, ``bca``, ``ci_low``, ``ci_high``, ``ci_method``,
    ``n`` (utterances scored), ``n_speakers`` (speakers scored), ``split_strategy``.

    Example:
        >>> headline_table([], [], settings=ReportSettings()).columns[:3].tolist()
        ['engine', 'protocol', 'bca']
    """
    rows = []
    for entry in pooled:
        low, high = (entry.get("bca_ci95") or [None, None])[:2]
        rows.append(
            {
                "engine": entry["engine"],
                "protocol": entry["protocol"],
                "bca": _number(entry["bca"]),
                "ci_low": _number(low),
                "ci_high": _number(high),
                "ci_method": "speaker bootstrap",
                "n": int(entry["n"]),
                "n_speakers": int(entry["n_speakers"]),
                "split_strategy": "speaker",
            }
        )
    for evaluation in evaluations:
        if evaluation.corpus not in settings.tune_corpora or evaluation.zero_shot:
            continue
        rows.append(
            {
                "engine": evaluation.model,
                "protocol": SINGLE_SPLIT,
                "bca": evaluation.bca,
                "ci_low": evaluation.bca_ci95[0],
                "ci_high": evaluation.bca_ci95[1],
                "ci_method": "utterance bootstrap",
                "n": evaluation.n,
                "n_speakers": math.nan,
                "split_strategy": evaluation.protocol,
            }
        )
    columns = ["engine", "protocol", "bca", "ci_low", "ci_high", "ci_method", "n", "n_speakers"]
    table = pd.DataFrame(rows, columns=[*columns, "split_strategy"])
    if table.empty:
        return table
    order = {engine: i for i, engine in enumerate(model_order(table["engine"]))}
    table["_engine"] = table["engine"].map(order)
    table["_single"] = table["protocol"] == SINGLE_SPLIT
    return (
        table.sort_values(["_single", "_engine"], kind="stable")
        .drop(columns=["_engine", "_single"])
        .reset_index(drop=True)
    )


def headline_markdown(table: pd.DataFrame, *, notes: Sequence[str] = ()) -> str:
    """The headline table for reading, with the protocols and intervals explained.

    Example:
        >>> print(headline_markdown(headline_table([], [], settings=ReportSettings())))
        ... # doctest: +ELLIPSIS
        # Headline: balanced class accuracy per engine...
    """
    lines = ["# Headline: balanced class accuracy per engine", ""]
    if table.empty:
        lines.append("No pooled cross-validation or single-split evaluation yet.")
    else:
        lines += [
            "| engine | protocol | BCA [95 % CI] | interval | utterances | speakers |",
            "|---|---|---|---|---|---|",
        ]
        for row in table.itertuples(index=False):
            protocol = row.protocol
            if protocol == SINGLE_SPLIT and row.split_strategy != "stratified":
                protocol = f"{SINGLE_SPLIT}, {row.split_strategy} split"
            ci = (
                f"{row.bca:.3f}"
                if pd.isna(row.ci_low)
                else f"{row.bca:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"
            )
            speakers = "—" if pd.isna(row.n_speakers) else str(int(row.n_speakers))
            lines.append(
                f"| {row.engine} | {protocol} | {ci} | {row.ci_method} | {row.n} | {speakers} |"
            )
    lines += [
        "",
        "- Speaker CV / leave-one-speaker-out: every speaker of the tuning corpus is held out "
        "exactly once; each outer fold's study selects on inner speaker folds of its training "
        "speakers, its best configuration is retrained on them and scores the held-out "
        "speakers once. BCA pools every held-out prediction; the interval resamples speakers "
        "(cluster bootstrap).",
        f"- {SINGLE_SPLIT}: one train/valid/test split, selection on its validation part, BCA "
        "of the test part; the interval resamples utterances, which ignores that a speaker's "
        "utterances are alike.",
        *(f"- {note}" for note in notes),
    ]
    return "\n".join(lines) + "\n"


def plot_per_speaker(per_speaker: pd.DataFrame, path: Path, *, chance: float) -> Path:
    """Per-speaker held-out BCA, one group of bars per speaker, one bar per engine.

    Example:
        >>> plot_per_speaker(table, Path("cv_per_speaker.png"), chance=1 / 7)  # doctest: +SKIP
    """
    from serhpo.report.plots import engine_colour

    speakers = sorted(per_speaker["speaker"].astype(str).unique()) if len(per_speaker) else []
    engines = model_order(per_speaker["engine"].unique()) if len(per_speaker) else []
    figure = Figure(figsize=(max(6.0, 0.6 * len(speakers) * max(1, len(engines)) + 2), 4.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(engines))
    for number, engine in enumerate(engines):
        rows = per_speaker[per_speaker["engine"] == engine].set_index(
            per_speaker.loc[per_speaker["engine"] == engine, "speaker"].astype(str)
        )
        values = [rows["bca"].get(s, math.nan) for s in speakers]
        positions = [i + (number - (len(engines) - 1) / 2) * width for i in range(len(speakers))]
        axes.bar(positions, values, width=width, label=engine, color=engine_colour(engine))
    axes.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    axes.set_xticks(range(len(speakers)), speakers)
    axes.set_xlabel("held-out speaker")
    axes.set_ylabel("BCA on the speaker's utterances")
    axes.set_ylim(0, 1)
    axes.set_title("Speaker cross-validation: held-out BCA per speaker")
    if engines:
        axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    return path
