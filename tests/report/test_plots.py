"""The figures are written as real, readable PNG images, whatever the studies hold."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from serhpo.report.inputs import Evaluation, ReportSettings, read_evaluation, read_study
from serhpo.report.plots import (
    best_so_far_figure,
    confusion_title,
    engine_colour,
    plot_best_so_far,
    plot_confusion,
    plot_param_effects,
)

SETTINGS = ReportSettings.from_config({"split": {"strategy": "speaker"}})


def _assert_real_png(path: Path, *, min_width: int = 600, min_height: int = 400) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 10_000
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    return pixels


def test_best_so_far_is_drawn_for_every_study(fake_run, tmp_path):
    studies = [read_study(p) for p in fake_run.trials]
    path = plot_best_so_far(studies, tmp_path / "plots" / "best_so_far.png", settings=SETTINGS)
    _assert_real_png(path, min_width=1000)


def test_the_best_so_far_legend_sits_beside_the_axes_and_names_failed_trials(fake_run):
    studies = [read_study(p) for p in fake_run.trials]
    trials = studies[0].trials.copy()
    trials.loc[trials.index[1], ["status", "value"]] = ["failed", math.nan]
    studies[0] = type(studies[0])(studies[0].engine, trials, None, studies[0].path)
    figure = best_so_far_figure(studies, settings=SETTINGS)
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    (legend,) = figure.legends
    axes = figure.axes[0]
    # the legend box does not overlap the plotting area, whatever the data
    assert not legend.get_window_extent(renderer).overlaps(axes.get_window_extent(renderer))
    texts = [t.get_text() for t in legend.get_texts()]
    assert any(t.startswith(studies[0].engine + " (") for t in texts)
    assert "failed trial (no BCA), at the minute it ended" in texts
    assert "x on the axis" not in axes.get_xlabel()


def test_plots_with_no_study_still_write_a_figure(tmp_path):
    # Snakemake expects the declared outputs even when every study is missing.
    best = plot_best_so_far([], tmp_path / "best.png", settings=SETTINGS)
    effects = plot_param_effects([], tmp_path / "effects.png", settings=SETTINGS)
    assert best.stat().st_size > 5_000 and effects.stat().st_size > 5_000


def test_confusion_is_drawn_with_counts_for_seven_classes_and_an_empty_row(tmp_path):
    labels = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 12, size=(7, 7))
    confusion[2] = 0  # a class absent from the test part (speaker 08 has no disgust)
    evaluation = Evaluation(
        model="optuna",
        corpus="emodb",
        protocol="speaker",
        part="test",
        zero_shot=False,
        n=int(confusion.sum()),
        labels=labels,
        bca=0.61,
        bca_ci95=(0.5, 0.7),
        accuracy=0.6,
        macro_f1=0.58,
        confusion=confusion,
        path=tmp_path / "e.json",
    )
    path = plot_confusion(evaluation, tmp_path / "confusion_optuna_emodb.png")
    _assert_real_png(path, min_width=900, min_height=900)


def test_confusion_titles_say_what_was_scored_in_words(tmp_path):
    evaluation = Evaluation(
        model="ax",
        corpus="ravdess",
        protocol="speaker",
        part="all",
        zero_shot=True,
        n=40,
        labels=("anger", "neutral"),
        bca=0.5,
        bca_ci95=(math.nan, math.nan),
        accuracy=0.5,
        macro_f1=0.5,
        confusion=np.array([[10, 10], [10, 10]]),
        path=tmp_path / "e.json",
    )
    title = confusion_title(evaluation)
    assert title.startswith("ax: zero-shot on ravdess, all labelled utterances\nn=40,")
    assert "all part" not in title
    home = dataclasses.replace(evaluation, part="test", zero_shot=False)
    assert "in-corpus on ravdess, test speakers' utterances" in confusion_title(home)


def test_confusion_of_a_fake_evaluation(fake_run, tmp_path):
    evaluation = read_evaluation(fake_run.evals[0])
    _assert_real_png(plot_confusion(evaluation, tmp_path / "c.png"))


def test_param_effects_handle_text_choices_and_conditional_parameters(fake_run, tmp_path):
    studies = [read_study(p) for p in fake_run.trials]
    extra = studies[0].trials.copy()
    extra["param_architecture"] = ["cnn", "mlp", "cnn", "gru", "mlp"]
    extra["param_channels"] = [16, math.nan, 32, math.nan, math.nan]  # only for cnn
    studies[0] = type(studies[0])("ax", extra, None, studies[0].path)
    path = plot_param_effects(studies, tmp_path / "param_effects.png", settings=SETTINGS)
    _assert_real_png(path, min_width=1500)
    # a loguniform child whose parent never chose it: no value at all, no log axis
    extra["param_lr"] = math.nan
    studies[0] = type(studies[0])("ax", extra, None, studies[0].path)
    path = plot_param_effects(studies[:1], tmp_path / "no_lr.png", settings=SETTINGS)
    _assert_real_png(path, min_width=1500)


@pytest.mark.parametrize("engine", ["ax", "grid", "someone-else"])
def test_each_engine_keeps_its_colour(engine):
    assert engine_colour(engine) == engine_colour(engine)
    assert engine_colour("ax") != engine_colour("optuna")


def test_a_study_whose_trials_all_failed_is_drawn_without_a_line(tmp_path):
    folder = tmp_path / "hpo" / "random"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "trial": [1, 2],
            "param_lr": [1e-3, 5e-4],
            "value": [math.nan, math.nan],
            "cumulative_seconds": [5.0, 9.0],
            "status": ["failed", "failed"],
        }
    ).to_csv(folder / "trials.csv", index=False)
    study = read_study(folder / "trials.csv")
    _assert_real_png(plot_best_so_far([study], tmp_path / "b.png", settings=SETTINGS))
    _assert_real_png(plot_param_effects([study], tmp_path / "p.png", settings=SETTINGS))
