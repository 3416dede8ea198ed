"""The headline table: pooled speaker-CV BCA per engine beside the single split, and its plot."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from serhpo.errors import UserError
from serhpo.report.headline import (
    SINGLE_SPLIT,
    headline_markdown,
    headline_table,
    plot_per_speaker,
    read_pooled,
)
from serhpo.report.inputs import ReportSettings, read_evaluation
from serhpo.report.stage import build_report


def _pooled(folder: Path, engine: str, bca: float) -> Path:
    path = folder / "cv" / engine / "pooled.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "engine": engine,
                "protocol": "speaker CV, 5 folds",
                "n": 535,
                "n_speakers": 10,
                "bca": bca,
                "bca_ci95": [bca - 0.05, bca + 0.04],
                "ci_method": "speaker bootstrap",
            }
        )  # fmt: skip
    )
    pd.DataFrame(
        {"engine": engine, "speaker": ["03", "08"], "fold": [0, 1], "n": [49, 58],
         "bca": [bca + 0.1, bca - 0.1], "accuracy": [0.7, 0.5]}
    ).to_csv(path.parent / "per_speaker.csv", index=False)  # fmt: skip
    return path


def test_the_headline_puts_pooled_cv_first_and_names_each_protocol(fake_run) -> None:
    pooled = [read_pooled(_pooled(fake_run.root, "optuna", 0.61))]
    evaluations = [read_evaluation(p) for p in fake_run.evals]
    settings = ReportSettings.from_config({"corpora": {"emodb": {"role": "tune"}}})
    table = headline_table(pooled, evaluations, settings=settings)
    assert list(table["protocol"]) == ["speaker CV, 5 folds", SINGLE_SPLIT, SINGLE_SPLIT]
    assert list(table["engine"]) == ["optuna", "ax", "optuna"]  # zero-shot rows left out
    cv = table.iloc[0]
    assert (cv["bca"], cv["ci_low"], cv["ci_method"]) == (
        0.61,
        pytest.approx(0.56),
        "speaker bootstrap",
    )
    text = headline_markdown(table)
    assert (
        "| optuna | speaker CV, 5 folds | 0.610 [0.560, 0.650] | speaker bootstrap | 535 | 10 |"
        in text
    )
    assert f"{SINGLE_SPLIT}, speaker split" in text and "utterance bootstrap" in text


def test_the_report_writes_the_headline_and_the_per_speaker_plot(fake_run) -> None:
    cv = [_pooled(fake_run.root, "optuna", 0.61), _pooled(fake_run.root, "grid", 0.55)]
    settings = ReportSettings.from_config({"corpora": {"emodb": {"role": "tune"}}})
    written = build_report(
        trials_paths=fake_run.trials, eval_paths=fake_run.evals, settings=settings,
        out_dir=fake_run.root, cv_paths=cv,
    )  # fmt: skip
    headline = pd.read_csv(fake_run.root / "tables" / "headline.csv")
    assert headline.loc[headline["protocol"] != SINGLE_SPLIT, "engine"].tolist() == [
        "optuna",
        "grid",
    ]
    plot = fake_run.root / "plots" / "cv_per_speaker.png"
    assert plot in written and plot.stat().st_size > 5000


def test_a_pooled_file_without_its_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pooled.json"
    path.write_text(json.dumps({"engine": "optuna"}))
    with pytest.raises(UserError, match="missing.*cv-pool"):
        read_pooled(path)


def test_the_per_speaker_plot_keeps_speaker_ids_as_text(tmp_path: Path) -> None:
    table = pd.DataFrame({"engine": ["ax", "ax"], "speaker": ["03", "10"], "bca": [0.5, 0.7]})
    assert plot_per_speaker(table, tmp_path / "p.png", chance=1 / 7).stat().st_size > 5000
