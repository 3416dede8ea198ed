"""Tables 3-6: every number checked against the fake run's trials and evaluations."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest
import yaml

from serhpo.report import paper
from serhpo.report.inputs import ReportSettings, read_evaluation, read_study
from serhpo.report.tables import (
    SOURCE_PAPER,
    SOURCE_RUN,
    best_config_table,
    best_trial,
    efficiency_table,
    model_order,
    time_to_threshold_table,
    trial_progress,
    write_table,
    zero_shot_table,
)

SETTINGS = ReportSettings.from_config(
    {
        "split": {"strategy": "speaker"},
        "corpora": {"emodb": {"role": "tune"}, "ravdess": {"role": "zero_shot"}},
    }
)


@pytest.fixture
def studies(fake_run):
    return [read_study(path) for path in fake_run.trials]


@pytest.fixture
def evaluations(fake_run):
    return [read_evaluation(path) for path in fake_run.evals]


def _first_above(frame: pd.DataFrame, threshold: float):
    """Independent of the module: walk the trials in finishing order, keep the best usable."""
    best = -math.inf
    ordered = sorted(frame.itertuples(), key=lambda r: (r.cumulative_seconds, r.trial))
    for row in ordered:
        if row.status != "failed" and not math.isnan(row.value):
            best = max(best, row.value)
        if best > threshold:
            return row.cumulative_seconds / 60, row.trial
    return None


def _ours(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["source"] == SOURCE_RUN]


def test_progress_follows_finishing_time_and_skips_failed_and_nan_values():
    trials = pd.DataFrame(
        {
            "trial": [0, 1, 2, 3],
            "value": [0.6, 0.9, math.nan, 0.7],
            # trial 1 finished last (parallel workers)
            "cumulative_seconds": [60.0, 300.0, 90.0, 120.0],
            "status": ["complete", "failed", "complete", "pruned"],
        }
    )
    progress = trial_progress(trials)
    assert progress["trial"].tolist() == [0, 2, 3, 1]
    assert progress["best_so_far"].tolist() == [0.6, 0.6, 0.7, 0.7]
    assert progress["usable"].tolist() == [True, False, True, False]
    assert progress["trials_run"].tolist() == [1, 2, 3, 4]
    assert progress["minutes"].tolist() == [1.0, 1.5, 2.0, 5.0]


def test_time_to_threshold_agrees_with_the_trials(fake_run, studies):
    table = _ours(time_to_threshold_table(studies, settings=SETTINGS))
    assert len(table) == 3 * 2
    for row in table.itertuples():
        expected = _first_above(fake_run.studies[row.engine], row.threshold)
        if expected is None:
            assert not row.reached and math.isnan(row.minutes) and pd.isna(row.trial)
        else:
            assert row.reached and (row.minutes, row.trial) == expected
    assert set(table["protocol"]) == {"speaker"}


def test_an_engine_that_never_reaches_a_threshold_says_so(studies):
    table = time_to_threshold_table(studies, settings=SETTINGS)
    ours = _ours(table)
    grid = ours[ours["engine"] == "grid"]
    assert grid["reached"].tolist() == [False, False]
    optuna = ours[ours["engine"] == "optuna"].set_index("threshold")
    # optuna counts from 0; its pruned trial 2 (the third to finish) crossed 0.8
    assert optuna.loc[0.8, "trial"] == 2 and optuna.loc[0.8, "trials_run"] == 3
    assert not optuna.loc[0.9, "reached"]


def test_paper_rows_are_added_marked_and_only_when_asked(studies):
    with_paper = time_to_threshold_table(studies, settings=SETTINGS)
    rows = with_paper[with_paper["source"] == SOURCE_PAPER].set_index(["engine", "threshold"])
    assert set(rows["protocol"]) == {"stratified"}
    for engine, by_threshold in paper.PAPER_TIME_TO_THRESHOLD.items():
        for threshold, (minutes, trial) in by_threshold.items():
            assert rows.loc[(engine, threshold), "minutes"] == minutes
            # numbered from 0 as trials.csv is; the paper counts from 1
            assert rows.loc[(engine, threshold), "trial"] == trial - 1
            assert rows.loc[(engine, threshold), "trials_run"] == trial
    without = time_to_threshold_table(
        studies, settings=ReportSettings.from_config({"report": {"paper_figures": False}})
    )
    assert set(without["source"]) == {SOURCE_RUN}


def test_paper_rows_only_for_the_thresholds_the_paper_has(studies):
    settings = ReportSettings.from_config({"report": {"thresholds": [0.7, 0.9]}})
    table = time_to_threshold_table(studies, settings=settings)
    assert set(table.loc[table["source"] == SOURCE_PAPER, "threshold"]) == {0.9}
    assert set(_ours(table)["threshold"]) == {0.7, 0.9}


def test_rows_put_each_engine_beside_its_paper_row(studies):
    table = time_to_threshold_table(studies, settings=SETTINGS)
    pairs = list(dict.fromkeys(zip(table["engine"], table["source"], strict=True)))
    assert pairs[:3] == [("ax", SOURCE_RUN), ("ax", SOURCE_PAPER), ("hyperopt", SOURCE_PAPER)]


def test_best_config_takes_best_yaml_then_the_highest_usable_trial(fake_run, studies, evaluations):
    table = _ours(best_config_table(studies, evaluations, settings=SETTINGS)).set_index("engine")
    for engine, frame in fake_run.studies.items():
        usable = frame[(frame["status"] != "failed") & frame["value"].notna()]
        expected = usable.loc[usable["value"].idxmax()]
        row = table.loc[engine]
        assert row["trial"] == expected["trial"]
        assert row["valid_bca"] == expected["value"]
        for name in ("lr", "epochs", "unfreeze", "maxlen"):
            assert row[f"param_{name}"] == expected[f"param_{name}"]
    # optuna has no best.yaml: its best is a pruned trial (its last score counts)
    assert table.loc["optuna", "trial"] == 2


def test_best_config_reports_the_final_models_test_bca(fake_run, studies, evaluations):
    table = _ours(best_config_table(studies, evaluations, settings=SETTINGS)).set_index("engine")
    for engine in ("ax", "optuna"):
        data = fake_run.evaluations[(engine, "emodb")]
        row = table.loc[engine]
        assert (row["test_corpus"], row["test_part"], row["test_n"]) == ("emodb", "test", data["n"])
        assert row["test_bca"] == data["bca"]
        assert [row["test_bca_ci95_low"], row["test_bca_ci95_high"]] == data["bca_ci95"]
    assert math.isnan(table.loc["grid", "test_bca"])  # grid's final model was not evaluated


def test_best_yaml_naming_an_unusable_trial_falls_back_with_a_warning(fake_run, caplog):
    path = fake_run.trials[0].with_name("best.yaml")  # ax
    failed = {"engine": "ax", "trial": 3, "params": {}, "value": None, "metric": "valid_bca"}
    path.write_text(yaml.safe_dump(failed))  # names a failed trial
    with caplog.at_level(logging.WARNING):
        best = best_trial(read_study(fake_run.trials[0]))
    assert best["trial"] == 4
    assert "names trial 3, which is not a usable trial" in caplog.text


def test_efficiency_is_best_bca_over_the_minutes_to_reach_it(fake_run, studies):
    table = _ours(efficiency_table(studies, settings=SETTINGS)).set_index("engine")
    for engine, frame in fake_run.studies.items():
        usable = frame[(frame["status"] != "failed") & frame["value"].notna()]
        best = usable.loc[usable["value"].idxmax()]
        row = table.loc[engine]
        minutes = best["cumulative_seconds"] / 60
        assert row["best_valid_bca"] == best["value"]
        assert row["minutes_to_best"] == minutes
        assert row["efficiency"] == best["value"] / minutes
        assert row["total_minutes"] == frame["cumulative_seconds"].max() / 60
        counts = frame["status"].value_counts()
        assert row["n_trials"] == len(frame)
        assert row["n_complete"] == counts.get("complete", 0)
        assert row["n_failed"] == counts.get("failed", 0)
        assert row["n_pruned"] == counts.get("pruned", 0)
    paper_rows = efficiency_table(studies, settings=SETTINGS).query("source == @SOURCE_PAPER")
    assert paper_rows.set_index("engine").loc["ax", "efficiency"] == 0.0872


def test_an_engine_without_a_usable_trial_gets_an_empty_row(tmp_path):
    folder = tmp_path / "random"
    folder.mkdir()
    pd.DataFrame(
        {
            "trial": [1, 2],
            "value": [math.nan, math.nan],
            "cumulative_seconds": [5.0, 9.0],
            "status": ["failed", "failed"],
        }
    ).to_csv(folder / "trials.csv", index=False)
    study = read_study(folder / "trials.csv")
    settings = ReportSettings.from_config({"report": {"paper_figures": False}})
    assert best_trial(study) is None
    assert efficiency_table([study], settings=settings)["n_failed"].tolist() == [2]
    assert math.isnan(best_config_table([study], [], settings=settings)["valid_bca"].iloc[0])
    assert time_to_threshold_table([study], settings=settings)["reached"].tolist() == [False, False]


def test_zero_shot_table_copies_every_evaluation(fake_run, evaluations):
    table = zero_shot_table(evaluations, settings=SETTINGS)
    ours = _ours(table)
    assert len(ours) == len(fake_run.evaluations)
    for row in ours.itertuples():
        data = fake_run.evaluations[(row.model, row.corpus)]
        assert row.bca == data["bca"]
        assert [row.bca_ci95_low, row.bca_ci95_high] == data["bca_ci95"]
        assert (row.n, row.part, row.zero_shot, row.protocol) == (
            data["n"],
            data["part"],
            data["zero_shot"],
            "speaker",
        )
    assert ours[ours["corpus"] == "emodb"]["model"].tolist() == ["pretrained", "ax", "optuna"]
    theirs = table[table["source"] == SOURCE_PAPER].set_index(["corpus", "model"])
    for corpus, (zero_shot, tuned) in paper.PAPER_ZERO_SHOT.items():
        assert theirs.loc[(corpus, "pretrained"), "bca"] == zero_shot
        assert theirs.loc[(corpus, "tuned"), "bca"] == tuned


def test_model_order_puts_pretrained_and_the_papers_engines_first():
    assert model_order(["grid", "x", "pretrained", "hyperopt"]) == [
        "pretrained",
        "hyperopt",
        "grid",
        "x",
    ]


def test_tables_are_written_at_full_precision(tmp_path, studies):
    table = efficiency_table(studies, settings=SETTINGS)
    paths = write_table(table, "# text\n", out_dir=tmp_path / "tables", stem="t5")
    assert [p.name for p in paths] == ["t5.csv", "t5.md", "t5.html"]
    back = pd.read_csv(paths[0])
    assert back["minutes_to_best"].tolist()[0] == table["minutes_to_best"].tolist()[0]
    assert paths[1].read_text() == "# text\n"
