"""Markdown renderings of Tables 3-6: rounded for reading, one line naming the split protocol.

The CSV written beside each (:mod:`serhpo.report.tables`) keeps every number at full precision;
these renderings only format it. Rows of the paper's figures are marked ``paper`` and cited.

Example:
    >>> print(protocol_line("stratified"))  # doctest: +ELLIPSIS
    Split protocol: **stratified** (random label-stratified split; ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from serhpo.report import paper
from serhpo.report.inputs import PARAM_PREFIX, PRETRAINED_MODEL, PROTOCOLS
from serhpo.report.tables import SOURCE_PAPER, SOURCE_RUN, model_order


def protocol_line(protocol: str) -> str:
    """The Markdown line that names a split protocol.

    Example:
        >>> protocol_line("speaker")[:40]
        'Split protocol: **speaker** (speaker-ind'
    """
    return f"Split protocol: **{protocol}** ({PROTOCOLS.get(protocol, 'unknown protocol')})."


def time_to_threshold_markdown(table: pd.DataFrame, *, notes: Sequence[str] = ()) -> str:
    """Table 3 for reading: one row per engine, one column per threshold.

    Example:
        >>> print(time_to_threshold_markdown(table))  # doctest: +SKIP
    """
    thresholds = sorted(table["threshold"].unique())
    header = ["engine", "source", *(f"> {t:.2f}" for t in thresholds)]
    lines = []
    for (source, engine), rows in _grouped(table, "engine"):
        cells = []
        for threshold in thresholds:
            row = rows[rows["threshold"] == threshold]
            if row.empty:
                cells.append("—")
            elif not row.iloc[0]["reached"]:
                cells.append("not reached")
            else:
                r = row.iloc[0]
                cells.append(f"{_minutes(r['minutes'])} min (trial {r['trial']})")
        lines.append([engine, source, *cells])
    return _document(
        "Table 3. Time to reach a validation BCA threshold",
        table,
        markdown_table(header, lines),
        [
            "Minutes of wall-clock time (cumulative over the study) and trial number at which the "
            "best-so-far validation balanced class accuracy (BCA) first exceeded the threshold; "
            "trial numbers as in trials.csv, counted from 0 (the paper counts from 1: its "
            "trial k is trial k - 1 in the paper rows here).",
            *notes,
        ],
        paper_table=3,
    )


def best_config_markdown(table: pd.DataFrame, *, notes: Sequence[str] = ()) -> str:
    """Table 4 for reading: the best configuration per engine, validation and test BCA."""
    params = [c for c in table.columns if c.startswith(PARAM_PREFIX)]
    header = ["engine", "source", "trial", *(c[len(PARAM_PREFIX) :] for c in params)]
    header += ["valid BCA", "test BCA [95 % CI]"]
    lines = []
    for _, row in table.iterrows():
        test = "—"
        if not pd.isna(row["test_bca"]):
            test = (
                f"{_ci(row['test_bca'], row['test_bca_ci95_low'], row['test_bca_ci95_high'])} "
                f"({row['test_corpus']} {row['test_part']}, n={row['test_n']})"
            )
        lines.append(
            [
                row["engine"],
                row["source"],
                _value(row["trial"]),
                *(_value(row[c]) for c in params),
                _bca(row["valid_bca"]),
                test,
            ]
        )
    return _document(
        "Table 4. Best configuration per engine",
        table,
        markdown_table(header, lines),
        [
            "The best trial's parameters and its validation BCA (the score the engine selected "
            "on); the test BCA is the retrained final model's on its home corpus' test part, "
            "with a 95 % confidence interval. The paper's BCA was measured on the split it also "
            "selected on, so it is shown as a validation score.",
            *notes,
        ],
        paper_table=4,
    )


def efficiency_markdown(table: pd.DataFrame, *, notes: Sequence[str] = ()) -> str:
    """Table 5 for reading: efficiency E = best BCA / minutes to reach it, and trial counts."""
    header = [
        "engine",
        "source",
        "best valid BCA",
        "minutes to best",
        "E = BCA / min",
        "total min",
        "trials (complete / failed / pruned)",
    ]
    lines = []
    for _, row in table.iterrows():
        counts = "—"
        if not pd.isna(row["n_trials"]):
            counts = (
                f"{row['n_trials']} ({row['n_complete']} / {row['n_failed']} / {row['n_pruned']})"
            )
        lines.append(
            [
                row["engine"],
                row["source"],
                _bca(row["best_valid_bca"]),
                _minutes(row["minutes_to_best"]),
                "—" if pd.isna(row["efficiency"]) else f"{row['efficiency']:.4g}",
                _minutes(row["total_minutes"]),
                counts,
            ]
        )
    return _document(
        "Table 5. Search efficiency",
        table,
        markdown_table(header, lines),
        [
            "E = best validation BCA / wall-clock minutes until the trial that reached it "
            "finished (the paper's definition: higher is better, it rewards finding a good "
            "configuration early). Total minutes cover the whole study.",
            *notes,
        ],
        paper_table=5,
    )


def zero_shot_markdown(table: pd.DataFrame, *, notes: Sequence[str] = ()) -> str:
    """Table 6 for reading: one row per corpus, one column per model, BCA with 95 % CI."""
    ours = table[table["source"] == SOURCE_RUN]
    theirs = table[table["source"] == SOURCE_PAPER]
    models = model_order(ours["model"])
    header = ["corpus", "evaluated on", *(_model_heading(m) for m in models)]
    if not theirs.empty:
        header += ["paper: zero-shot", "paper: tuned"]
    lines = []
    corpora = list(dict.fromkeys([*ours["corpus"], *theirs["corpus"]]))
    for corpus in corpora:
        here = ours[ours["corpus"] == corpus]
        parts = ", ".join(dict.fromkeys(f"{r['part']} (n={r['n']})" for _, r in here.iterrows()))
        cells = [corpus, parts or "—"]
        for model in models:
            row = here[here["model"] == model]
            cells.append(
                "—"
                if row.empty
                else _ci(
                    row.iloc[0]["bca"], row.iloc[0]["bca_ci95_low"], row.iloc[0]["bca_ci95_high"]
                )
            )
        if not theirs.empty:
            for model in (PRETRAINED_MODEL, "tuned"):
                row = theirs[(theirs["corpus"] == corpus) & (theirs["model"] == model)]
                cells.append("—" if row.empty else _bca(row.iloc[0]["bca"]))
        lines.append(cells)
    return _document(
        "Table 6. Zero-shot and tuned BCA per corpus",
        table,
        markdown_table(header, lines),
        [
            "Balanced class accuracy with its 95 % confidence interval. `pretrained` is the "
            "backbone's own head without tuning (zero-shot everywhere); every other column is an "
            "engine's final model, tested on its home corpus' test part and zero-shot on the "
            "other corpora (all their utterances).",
            *label_set_notes(ours),
            *notes,
        ],
        paper_table=6,
    )


def label_set_notes(ours: pd.DataFrame) -> list[str]:
    """Table 6's notes on the labels each score covers, its chance level, and normalisation.

    Example:
        >>> label_set_notes(table[table["source"] == "this run"])  # doctest: +SKIP
        ['Label sets and chance. ...', 'ravdess: shared labels anger ... (chance 0.167) for ax ...']
    """
    if ours.empty or "label_set" not in ours.columns:
        return []
    notes = [
        "Label sets and chance. A zero-shot score is on the labels the corpus and the model "
        "share by default (the argmax over those outputs only; evaluation.zero_shot_labels), "
        "with the unrestricted BCA over all the model's outputs beside it."
    ]
    # One note per corpus, the models that share a label set together: a list, not a paragraph.
    for corpus, rows in ours.groupby("corpus", sort=False):
        scopes: dict[str, list[str]] = {}
        for _, row in rows.iterrows():
            if row["label_set"] == "shared":
                scope = f"shared labels {row['labels']} (chance {row['chance']:.3f})"
                model = f"{row['model']} (all outputs: {_bca(row['bca_unrestricted'])})"
            else:
                scope, model = f"all labels (chance {row['chance']:.3f})", str(row["model"])
            scopes.setdefault(scope, []).append(model)
        notes.append(
            f"{corpus}: "
            + "; ".join(f"{scope} for {', '.join(models)}" for scope, models in scopes.items())
            + "."
        )
    modes = {f"{r['model']}: {r['normalise']}" for _, r in ours.iterrows()}
    notes.append(
        "Feature standardisation (each scored corpus with its own statistics, no labels): "
        + ", ".join(sorted(modes))
        + ". Loudness normalisation in prepare: "
        + ", ".join(sorted(set(ours["loudness"].astype(str))))
        + "."
    )
    return notes


def _grouped(table: pd.DataFrame, key: str) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """Rows grouped by (source, key), this run's first, each in table order."""
    groups = dict.fromkeys(zip(table["source"], table[key], strict=True))
    return [
        ((source, name), table[(table["source"] == source) & (table[key] == name)])
        for source, name in groups
    ]


def _document(
    title: str, table: pd.DataFrame, body: str, notes: Sequence[str], *, paper_table: int
) -> str:
    ours = table[table["source"] == SOURCE_RUN]
    protocols = list(dict.fromkeys(ours["protocol"].dropna()))
    lines = [f"# {title}", ""]
    lines += [protocol_line(p) for p in protocols] or ["No results of this run yet (see below)."]
    lines += ["", body, ""]
    if (table["source"] == SOURCE_PAPER).any():
        notes = [
            *notes,
            f"Rows marked `{SOURCE_PAPER}`: {paper.PAPER_CITATION}, Table {paper_table} "
            f"({paper.PAPER_PROTOCOL} 80/20 split of EmoDB, selection on the reported split).",
        ]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _model_heading(model: str) -> str:
    return "pretrained (zero-shot)" if model == PRETRAINED_MODEL else model


def _bca(value: object) -> str:
    return "—" if pd.isna(value) else f"{value:.3f}"


def _ci(bca: float, low: float, high: float) -> str:
    if pd.isna(low) or pd.isna(high):
        return _bca(bca)
    return f"{bca:.3f} [{low:.3f}, {high:.3f}]"


def _minutes(value: object) -> str:
    if pd.isna(value):
        return "—"
    return f"{value:.0f}" if value >= 1000 else f"{value:.4g}"


def _value(value: object) -> str:
    """A parameter value: integers without '.0', small floats in scientific notation."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, bool | np.bool_ | str):
        return str(value)
    number = float(value)
    if number.is_integer() and abs(number) < 1e9:
        return str(int(number))
    return f"{number:.3g}"
