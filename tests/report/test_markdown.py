"""The Markdown renderings: protocol line, readable cells, paper rows marked and cited."""

from __future__ import annotations

import pytest

from serhpo.report import paper
from serhpo.report.inputs import ReportSettings, read_evaluation, read_study
from serhpo.report.markdown import (
    best_config_markdown,
    efficiency_markdown,
    protocol_line,
    time_to_threshold_markdown,
    zero_shot_markdown,
)
from serhpo.report.tables import (
    best_config_table,
    efficiency_table,
    time_to_threshold_table,
    zero_shot_table,
)


def _documents(fake_run, *, paper_figures: bool) -> dict[str, str]:
    settings = ReportSettings.from_config(
        {"split": {"strategy": "speaker"}, "report": {"paper_figures": paper_figures}}
    )
    studies = [read_study(p) for p in fake_run.trials]
    evaluations = [read_evaluation(p) for p in fake_run.evals]
    return {
        "3": time_to_threshold_markdown(
            time_to_threshold_table(studies, settings=settings), notes=["hyperopt is missing"]
        ),
        "4": best_config_markdown(best_config_table(studies, evaluations, settings=settings)),
        "5": efficiency_markdown(efficiency_table(studies, settings=settings)),
        "6": zero_shot_markdown(zero_shot_table(evaluations, settings=settings)),
    }


def _row(document: str, *cells: str) -> str:
    """The table line that starts with these cells."""
    start = "| " + " | ".join(cells) + " |"
    matches = [line for line in document.splitlines() if line.startswith(start)]
    assert len(matches) == 1, (start, document)
    return matches[0]


def test_every_table_names_its_protocol(fake_run):
    for number, document in _documents(fake_run, paper_figures=True).items():
        assert document.startswith(f"# Table {number}.")
        assert protocol_line("speaker") in document


def test_protocol_lines_describe_both_protocols():
    assert "(the paper's protocol)" in protocol_line("stratified")
    assert "no speaker appears in two" in protocol_line("speaker")


def test_table3_shows_minutes_trials_and_not_reached(fake_run):
    document = _documents(fake_run, paper_figures=True)["3"]
    assert _row(document, "ax", "this run") == (
        "| ax | this run | 2.548 min (trial 2) | 5.552 min (trial 4) |"
    )
    assert _row(document, "grid", "this run").count("not reached") == 2
    assert _row(document, "ax", "paper") == "| ax | paper | 2.4 min (trial 1) | 2.4 min (trial 1) |"
    assert "- hyperopt is missing" in document


@pytest.mark.parametrize("number", ["3", "4", "5", "6"])
def test_paper_rows_are_cited_when_on_and_absent_when_off(fake_run, number):
    on = _documents(fake_run, paper_figures=True)[number]
    off = _documents(fake_run, paper_figures=False)[number]
    assert paper.PAPER_CITATION in on and f"Table {number} (stratified" in on
    assert paper.PAPER_CITATION not in off
    assert "| paper |" not in off and "paper:" not in off


def test_table4_shows_parameters_and_the_test_bca_with_its_interval(fake_run):
    document = _documents(fake_run, paper_figures=True)["4"]
    assert _row(document, "ax", "this run", "4") == (
        "| ax | this run | 4 | 2e-05 | 8 | 2 | 80000 | 0.920 | "
        "0.889 [0.700, 1.000] (emodb test, n=9) |"
    )
    assert _row(document, "grid", "this run").endswith("| 0.780 | — |")


def test_table5_states_the_efficiency_definition(fake_run):
    document = _documents(fake_run, paper_figures=True)["5"]
    assert "E = best validation BCA / wall-clock minutes until the trial" in document
    assert _row(document, "optuna", "this run").endswith("| 5 (3 / 1 / 1) |")


def test_table6_puts_zero_shot_beside_the_tuned_models(fake_run):
    document = _documents(fake_run, paper_figures=True)["6"]
    assert (
        "| corpus | evaluated on | pretrained (zero-shot) | ax | optuna | paper: zero-shot |"
        in (document)
    )
    assert _row(document, "ravdess") == (
        "| ravdess | all (n=6) | 0.250 [0.050, 0.500] | 0.500 [0.200, 0.800] | — | 0.180 | 0.440 |"
    )
    assert _row(document, "cremad").startswith("| cremad | — | — | — | — | 0.130 |")


def test_a_table_without_results_of_this_run_says_so():
    settings = ReportSettings.from_config({"report": {"paper_figures": False}})
    document = zero_shot_markdown(zero_shot_table([], settings=settings), notes=["no evals"])
    assert "No results of this run yet" in document and "- no evals" in document
    assert "Split protocol" not in document


def test_table6_names_the_label_set_chance_and_normalisation_of_each_score(tmp_path):
    import json

    data = {
        "model": "ax", "corpus": "ravdess", "protocol": "speaker", "part": "all",
        "zero_shot": True, "label_set": "shared", "chance": 1 / 6, "n": 10,
        "labels": ["anger", "disgust", "fear", "happiness", "sadness", "neutral"],
        "bca": 0.4, "bca_ci95": [0.3, 0.5], "confusion": (6 * [6 * [0]]),
        "unrestricted": {"bca": 0.25}, "normalise": "speaker",
        "loudness": "-23 LUFS (peak limit -1 dBFS)",
    }  # fmt: skip
    (tmp_path / "e.json").write_text(json.dumps(data))
    evaluation = read_evaluation(tmp_path / "e.json")
    settings = ReportSettings.from_config({"split": {"strategy": "speaker"}})
    table = zero_shot_table([evaluation], settings=settings)
    row = table[table["model"] == "ax"].iloc[0]
    assert (row["label_set"], row["chance"], row["bca_unrestricted"]) == ("shared", 1 / 6, 0.25)
    document = zero_shot_markdown(table)
    assert (
        "- ravdess: shared labels anger disgust fear happiness sadness neutral "
        "(chance 0.167) for ax (all outputs: 0.250)." in document
    )
    assert "ax: speaker" in document and "-23 LUFS (peak limit -1 dBFS)" in document
