"""``serhpo report`` end to end: files written, numbers read back from disk, missing inputs."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import pandas as pd
import pytest

from serhpo.cli import main

TABLES = [
    "table3_time_to_threshold",
    "table4_best_config",
    "table5_efficiency",
    "table6_zero_shot",
]


def _report(fake_run, *extra: str, trials=None, evals=None) -> tuple[int, object]:
    out = fake_run.root.parent / "out"
    trials = [str(p) for p in fake_run.trials] if trials is None else trials
    evals = [str(p) for p in fake_run.evals] if evals is None else evals
    argv = ["report", "--trials", *trials, "--evals", *evals, "--out", str(out), *extra]
    return main(argv), out


@pytest.fixture(scope="module")
def full_report(shared_fake_run):
    """The report of the whole fake run, written once for the tests that only read it."""
    status, out = _report(shared_fake_run, "--config", str(shared_fake_run.config))
    assert status == 0
    return shared_fake_run, out


def test_the_stage_writes_every_table_and_figure(full_report):
    fake_run, out = full_report
    for stem in TABLES:
        assert (out / "tables" / f"{stem}.csv").is_file()
        assert "Split protocol: **speaker**" in (out / "tables" / f"{stem}.md").read_text()
    for stem in [*TABLES, "headline"]:
        # the page Snakemake's report shows inline: the Markdown's rows as a table, its notes
        page = (out / "tables" / f"{stem}.html").read_text(encoding="utf-8")
        markdown = (out / "tables" / f"{stem}.md").read_text()
        rows = [line for line in markdown.splitlines() if line.startswith("| ")]
        assert page.count("<table>") == 1 and page.count("<tr>") == len(rows), stem
        notes = [line for line in markdown.splitlines() if line.startswith("- ")]
        assert notes and page.count("<li>") == len(notes), stem
    expected = {"best_so_far.png", "param_effects.png"} | {
        f"confusion_{model}_{corpus}.png" for model, corpus in fake_run.evaluations
    }
    assert {p.name for p in (out / "plots").iterdir()} == expected
    for path in (out / "plots").iterdir():
        height, width = matplotlib.image.imread(path).shape[:2]
        assert width >= 600 and height >= 400


def test_the_csv_tables_agree_exactly_with_the_inputs(full_report):
    fake_run, out = full_report
    read = {stem: pd.read_csv(out / "tables" / f"{stem}.csv") for stem in TABLES}
    for stem, table in read.items():
        ours = table[table["source"] == "this run"]
        assert set(ours["protocol"]) == {"speaker"}, stem
    table3 = read["table3_time_to_threshold"].query("source == 'this run'")
    ax = fake_run.studies["ax"].set_index("trial")
    row = table3.query("engine == 'ax' and threshold == 0.9").iloc[0]
    assert row["minutes"] == ax.loc[4, "cumulative_seconds"] / 60 and row["trial"] == 4
    table5 = read["table5_efficiency"].query("source == 'this run'").set_index("engine")
    grid = fake_run.studies["grid"]
    assert table5.loc["grid", "best_valid_bca"] == grid["value"].max()
    assert table5.loc["grid", "efficiency"] == grid["value"].max() / (411.0 / 60)
    table6 = read["table6_zero_shot"].query("source == 'this run'").set_index(["model", "corpus"])
    for key, data in fake_run.evaluations.items():
        assert table6.loc[key, "bca"] == data["bca"]
        assert table6.loc[key, "bca_ci95_high"] == data["bca_ci95"][1]
    table4 = read["table4_best_config"].query("source == 'this run'").set_index("engine")
    assert table4.loc["ax", "param_lr"] == ax.loc[4, "param_lr"]
    assert table4.loc["ax", "test_bca"] == fake_run.evaluations[("ax", "emodb")]["bca"]


def test_missing_engines_and_evaluations_are_logged_not_fatal(fake_run, caplog):
    absent = str(fake_run.root / "hpo" / "random" / "trials.csv")  # an unmatched glob
    with caplog.at_level(logging.WARNING):
        status, out = _report(
            fake_run, "--config", str(fake_run.config), trials=[*map(str, fake_run.trials), absent]
        )
    assert status == 0
    assert "random/trials.csv does not exist; skipped" in caplog.text
    assert "No trials.csv for engine(s) hyperopt" in caplog.text
    assert "No evaluation for hyperopt/emodb" in caplog.text
    table3 = pd.read_csv(out / "tables" / "table3_time_to_threshold.csv")
    assert "hyperopt" not in set(table3.query("source == 'this run'")["engine"])
    assert (
        "No trials.csv for engine(s) hyperopt"
        in (out / "tables" / "table5_efficiency.md").read_text()
    )


def test_without_evaluations_the_tables_hold_what_exists(fake_run):
    status, out = _report(fake_run, "--config", str(fake_run.config), evals=[])
    assert status == 0
    table4 = pd.read_csv(out / "tables" / "table4_best_config.csv").query("source == 'this run'")
    assert len(table4) == 3 and table4["test_bca"].isna().all()
    table6 = pd.read_csv(out / "tables" / "table6_zero_shot.csv")
    assert set(table6["source"]) == {"paper"}
    assert not list((out / "plots").glob("confusion_*.png"))


def test_with_nothing_at_all_and_no_config_the_paper_rows_remain(fake_run):
    status, out = _report(fake_run, trials=[], evals=[])
    assert status == 0
    table3 = pd.read_csv(out / "tables" / "table3_time_to_threshold.csv")
    assert set(table3["source"]) == {"paper"} and len(table3) == 8
    assert (out / "plots" / "best_so_far.png").stat().st_size > 5_000


def test_config_json_overrides_the_config_files(fake_run):
    settings = '{"split": {"strategy": "stratified"}, "report": {"paper_figures": false}}'
    _, out = _report(
        fake_run, "--config", str(fake_run.config), "--config-json", settings, evals=[]
    )
    table5 = pd.read_csv(out / "tables" / "table5_efficiency.csv")
    assert set(table5["protocol"]) == {"stratified"} and set(table5["source"]) == {"this run"}


def test_an_engine_given_twice_stops_with_a_user_error(fake_run, capsys):
    twice = [str(fake_run.trials[0]), str(fake_run.trials[0])]
    status, _ = _report(fake_run, trials=twice)
    assert status == 2
    assert "engine 'ax' is given twice" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert all(option in text for option in ("--trials", "--evals", "--config", "--out"))


def test_a_second_config_file_sets_thresholds_and_turns_paper_rows_off(fake_run, tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("report: {thresholds: [0.5, 0.95], paper_figures: false}\n")
    _, out = _report(fake_run, "--config", str(fake_run.config), "--config", str(override))
    for stem in TABLES:
        assert set(pd.read_csv(out / "tables" / f"{stem}.csv")["source"]) == {"this run"}
    table3 = pd.read_csv(out / "tables" / "table3_time_to_threshold.csv")
    assert set(table3["threshold"]) == {0.5, 0.95}
    assert not math.isnan(table3.query("engine == 'grid' and threshold == 0.5")["minutes"].iloc[0])
    assert (
        "Split protocol: **speaker**"
        in (out / "tables" / "table3_time_to_threshold.md").read_text()
    )


CAPTIONS = Path(__file__).resolve().parents[2] / "workflow" / "report"


@pytest.mark.parametrize("protocol", ["stratified", "speaker"])
def test_every_output_has_a_caption_that_renders_as_snakemake_would(protocol):
    """Snakemake renders a caption with Jinja2 (``snakemake.config``) and then docutils."""
    jinja2 = pytest.importorskip("jinja2")
    docutils_core = pytest.importorskip("docutils.core")
    names = [*TABLES, "best_so_far", "param_effects", "confusion"]
    config = {"split": {"strategy": protocol}, "report": {"thresholds": [0.8, 0.9]}}
    for name in names:
        source = (CAPTIONS / f"{name}.rst").read_text()
        text = (
            jinja2.Environment()
            .from_string(source)
            .render(snakemake=SimpleNamespace(config=config))
        )
        assert "Split protocol" in text and f"**{protocol}**" in text, name
        html = docutils_core.publish_parts(
            text, writer="html", settings_overrides={"halt_level": 2, "report_level": 5}
        )["body"]
        assert "<strong>" in html, name
