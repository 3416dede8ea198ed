"""The report's figures: best-so-far curves, confusion matrices and parameter effects.

Figures are drawn with matplotlib's object API on the Agg canvas (no display, no global pyplot
state) and saved as PNG for Snakemake's report. Every title names the split protocol.

Example:
    >>> plot_best_so_far(studies, Path("best_so_far.png"), settings=settings)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from serhpo.hpo.settings import ENGINE_NAMES
from serhpo.report.inputs import PARAM_PREFIX, Evaluation, ReportSettings, Study
from serhpo.report.tables import model_order, trial_progress
from serhpo.trial import TrialStatus

DPI = 150
#: Where failed trials (no score) are drawn on a BCA axis, below 0.
_FAILED_Y = -0.08
#: Use a log time axis when the slowest study ran this many times longer than the fastest.
_LOG_TIME_RATIO = 30.0
_CHANCE_LABEL = "chance (1 / number of classes)"
#: What an evaluation's ``part`` scored, in words for the confusion titles.
_PART_WORDS = {
    "test": "test speakers' utterances",
    "all": "all labelled utterances",
}


def engine_colour(engine: str) -> str:
    """A fixed colour per engine, the same in every figure.

    Example:
        >>> engine_colour("ax")
        'C0'
    """
    names = list(ENGINE_NAMES)
    return f"C{names.index(engine)}" if engine in names else f"C{5 + sum(map(ord, engine)) % 5}"


def plot_best_so_far(studies: Sequence[Study], path: Path, *, settings: ReportSettings) -> Path:
    """Best-so-far validation BCA against wall-clock minutes, one step line per engine.

    Faint dots are the individual trials' scores, crosses on the time axis the failed trials
    (no score; drawn at the minute they ended), dashed lines Table 3's thresholds and a dotted
    line chance level (1 / number of classes). The legend sits outside the axes, right of
    them, so it never covers a curve.

    Example:
        >>> plot_best_so_far(studies, Path("best.png"), settings=settings)  # doctest: +SKIP
        PosixPath('best.png')
    """
    return _save(best_so_far_figure(studies, settings=settings), path)


def best_so_far_figure(studies: Sequence[Study], *, settings: ReportSettings) -> Figure:
    """The figure of :func:`plot_best_so_far`, not yet saved (its legend can be inspected).

    Example:
        >>> figure = best_so_far_figure(studies, settings=settings)  # doctest: +SKIP
        >>> [t.get_text() for t in figure.legends[0].get_texts()][-1]  # doctest: +SKIP
        'chance (1 / number of classes)'
    """
    figure = _figure(10.5, 5.0)
    axes = figure.add_subplot()
    by_engine = {study.engine: study for study in studies}
    totals = []
    any_failed = False
    for engine in model_order(by_engine):
        progress = trial_progress(by_engine[engine].trials)
        progress = progress[progress["minutes"].notna()]
        scored = progress[progress["best_so_far"].notna()]
        colour = engine_colour(engine)
        usable = progress[progress["usable"]]
        n_failed = int((progress["status"] == TrialStatus.FAILED.value).sum())
        label = f"{engine} ({len(progress)} trials, {n_failed} failed)"
        failed = progress[progress["status"] == TrialStatus.FAILED.value]
        any_failed = any_failed or not failed.empty
        # Failed trials have no score; an x on the time axis shows the time they cost.
        axes.scatter(
            failed["minutes"],
            np.zeros(len(failed)),
            color=colour,
            marker="x",
            s=24,
            clip_on=False,
            zorder=3,
        )
        if not progress.empty:
            totals.append(progress["minutes"].iloc[-1])
        if scored.empty:
            axes.plot([], [], color=colour, label=f"{label}: no usable trial")
            continue
        # Extend the last best value to the study's end: time spent without improvement shows.
        x = [*scored["minutes"], progress["minutes"].iloc[-1]]
        y = [*scored["best_so_far"], scored["best_so_far"].iloc[-1]]
        axes.step(x, y, where="post", color=colour, linewidth=2, label=label)
        axes.scatter(usable["minutes"], usable["value"], color=colour, s=14, alpha=0.35)
    for threshold in settings.thresholds:
        axes.axhline(threshold, color="0.4", linestyle="--", linewidth=0.8)
        axes.annotate(
            f"{threshold:.2f}",
            (1.0, threshold),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            color="0.3",
        )
    axes.axhline(1 / settings.n_classes, color="0.6", linestyle=":", linewidth=0.8)
    positive = [t for t in totals if t > 0]
    if positive and max(positive) / min(positive) > _LOG_TIME_RATIO:
        axes.set_xscale("log")
    else:
        axes.set_xlim(left=0)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("wall-clock minutes since the study started")
    axes.set_ylabel("best validation BCA so far")
    axes.set_title(f"Best-so-far validation BCA per engine (split: {settings.protocol})")
    axes.grid(alpha=0.3)
    if not by_engine:
        _no_data(axes, "no HPO study found")
    handles, labels = axes.get_legend_handles_labels()
    # What the marks mean, in grey: they are the same for every engine.
    keys = [
        (Line2D([], [], color="0.4", marker="o", linestyle="", alpha=0.5), "one trial's BCA"),
        (
            Line2D([], [], color="0.3", marker="x", linestyle=""),
            "failed trial (no BCA), at the minute it ended",
        ),
        (Line2D([], [], color="0.4", linestyle="--", linewidth=0.8), "Table 3 threshold"),
        (Line2D([], [], color="0.6", linestyle=":", linewidth=0.8), _CHANCE_LABEL),
    ]
    if not any_failed:
        keys.pop(1)
    figure.legend(
        [*handles, *(k[0] for k in keys)],
        [*labels, *(k[1] for k in keys)],
        loc="outside right upper",
        fontsize=9,
        title="engine (trials, failed)" if handles else None,
        alignment="left",
    )
    return figure


def confusion_title(evaluation: Evaluation) -> str:
    """The title of a confusion matrix: model, corpus, what was scored, BCA and split.

    Example:
        >>> confusion_title(evaluation).splitlines()[0]  # doctest: +SKIP
        'ax: zero-shot on ravdess, all labelled utterances'
    """
    scored = _PART_WORDS.get(evaluation.part, f"{evaluation.part} utterances")
    kind = "zero-shot" if evaluation.zero_shot else "in-corpus"
    low, high = evaluation.bca_ci95
    ci = "" if math.isnan(low) else f" [{low:.3f}, {high:.3f}]"
    return (
        f"{evaluation.model}: {kind} on {evaluation.corpus}, {scored}\n"
        f"n={evaluation.n}, BCA {evaluation.bca:.3f}{ci}, split: {evaluation.protocol}"
    )


def plot_confusion(evaluation: Evaluation, path: Path) -> Path:
    """A confusion matrix with rows normalised to the true class, counts annotated.

    Example:
        >>> plot_confusion(evaluation, Path("confusion_ax_emodb.png"))  # doctest: +SKIP
        PosixPath('confusion_ax_emodb.png')
    """
    counts = evaluation.confusion
    n = len(evaluation.labels)
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(support > 0, counts / np.maximum(support, 1), np.nan)
    size = max(5.0, 0.75 * n + 2.5)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    font = 10 if n <= 8 else 8
    for i in range(n):
        for j in range(n):
            share = shares[i, j]
            colour = "white" if not math.isnan(share) and share > 0.55 else "black"
            text = f"{counts[i, j]}" + ("" if math.isnan(share) else f"\n{share:.0%}")
            axes.text(j, i, text, ha="center", va="center", fontsize=font, color=colour)
    axes.set_xticks(range(n), evaluation.labels, rotation=45, ha="right")
    axes.set_yticks(
        range(n), [f"{label} ({int(support[i, 0])})" for i, label in enumerate(evaluation.labels)]
    )
    axes.set_xlabel("predicted")
    axes.set_ylabel("true class (support)")
    axes.set_title(confusion_title(evaluation), fontsize=11)
    colourbar = figure.colorbar(image, ax=axes, shrink=0.8)
    colourbar.set_label("share of the true class")
    return _save(figure, path)


def plot_param_effects(studies: Sequence[Study], path: Path, *, settings: ReportSettings) -> Path:
    """Validation BCA against each parameter, every trial of every engine.

    Filled markers are complete trials, hollow ones pruned; failed trials (no score) sit on the
    "failed" row below 0. Parameters sampled log-uniformly get a log axis; text-valued choices
    are placed side by side.

    Example:
        >>> plot_param_effects(studies, Path("params.png"), settings=settings)  # doctest: +SKIP
        PosixPath('params.png')
    """
    by_engine = {study.engine: study for study in studies}
    names = {name for study in studies for name in study.param_names}
    params = [n for n in settings.param_order if n in names] + sorted(
        names - set(settings.param_order)
    )
    columns = min(len(params), 4) or 1
    rows = math.ceil(len(params) / columns) or 1
    figure = _figure(4.2 * columns + 0.8, 3.6 * rows + 0.9)
    grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    for index, name in enumerate(params):
        axes = grid[index // columns][index % columns]
        column = PARAM_PREFIX + name
        values = pd.concat(
            [s.trials[column] for s in studies if column in s.trials.columns]
        ).dropna()
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        categories = [] if numeric else sorted(values.astype(str).unique())
        for engine in model_order(by_engine):
            trials = by_engine[engine].trials
            if column not in trials.columns:
                continue
            trials = trials[trials[column].notna()]
            x = trials[column] if numeric else trials[column].astype(str).map(categories.index)
            failed = (trials["status"] == TrialStatus.FAILED.value) | trials["value"].isna()
            pruned = ~failed & (trials["status"] == TrialStatus.PRUNED.value)
            complete = ~failed & ~pruned
            colour = engine_colour(engine)
            axes.scatter(
                x[complete], trials["value"][complete], color=colour, s=22, alpha=0.75, label=engine
            )
            axes.scatter(
                x[pruned],
                trials["value"][pruned],
                facecolors="none",
                edgecolors=colour,
                s=22,
                alpha=0.75,
            )
            axes.scatter(
                x[failed],
                np.full(int(failed.sum()), _FAILED_Y),
                color=colour,
                marker="x",
                s=22,
                alpha=0.75,
            )
        # A conditional parameter may have no value at all (its parent never chose it).
        if name in settings.log_params and numeric and len(values) and (values > 0).all():
            axes.set_xscale("log")
        if not numeric:
            axes.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        axes.axhline(1 / settings.n_classes, color="0.6", linestyle=":", linewidth=0.8)
        axes.axhline(_FAILED_Y / 2, color="0.8", linewidth=0.6)
        axes.set_xlabel(name + (" (log scale)" if axes.get_xscale() == "log" else ""))
        axes.grid(alpha=0.3)
    for index in range(len(params), rows * columns):
        grid[index // columns][index % columns].set_visible(False)
    first = grid[0][0]
    first.set_ylim(_FAILED_Y - 0.05, 1.02)
    ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    first.set_yticks([_FAILED_Y, *ticks], ["failed", *(f"{t:.1f}" for t in ticks)])
    for row in grid:
        row[0].set_ylabel("validation BCA")
    if params:
        # An engine may lack a conditional parameter: gather its legend entry from any panel.
        entries = {}
        for axes in grid.flat:
            for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
                entries.setdefault(label, handle)
        figure.legend(
            list(entries.values()),
            list(entries),
            loc="outside right upper",
            fontsize=9,
            title="engine",
        )
    else:
        _no_data(first, "no trial parameters found")
    figure.suptitle(
        f"Validation BCA against each parameter (split: {settings.protocol}); "
        "filled: complete, hollow: pruned, x: failed, dotted: chance"
    )
    return _save(figure, path)


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _no_data(axes: object, message: str) -> None:
    axes.text(0.5, 0.5, message, transform=axes.transAxes, ha="center", va="center", fontsize=12)


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path
