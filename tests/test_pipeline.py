"""The whole demo DAG, corpora to report, once and small: its outputs agree with each other.

Runs `snakemake` in a temporary copy of the workflow (see tests/test_workflow.py), with the
demo profile's settings shrunk so the run takes a few minutes on 2 cores.
"""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.snakemake, pytest.mark.slow]  # about 4 minutes on 2 cores

ENGINES = ["ax", "hyperopt", "optuna", "grid", "random"]
CORPORA = ["emodb", "ravdess", "cremad", "tess"]  # tess: the demo's corpus read from a table
MODELS = [*ENGINES, "pretrained"]
SMALL_DAG = {
    "corpora": {
        "emodb": {"source": "synthetic", "synthetic": {"speakers": 5, "per_speaker_label": 2}},
        "ravdess": {"source": "synthetic", "synthetic": {"speakers": 3, "per_speaker_label": 2}},
        "cremad": {"source": "synthetic", "synthetic": {"speakers": 3, "per_speaker_label": 2}},
        "tess": {"source": "synthetic", "synthetic": {"speakers": 3, "per_speaker_label": 1}},
    },
    "search_space": {
        "lr": {"type": "loguniform", "low": 1.0e-3, "high": 1.0e-2},
        "epochs": {"type": "int", "low": 1, "high": 2},
        "unfreeze": {"type": "int", "low": 0, "high": 1},
        "maxlen": {"type": "choice", "choices": [16000, 24000]},
    },
    "hpo": {"engines": ENGINES, "n_trials": 2, "n_sobol": 1},
    "evaluation": {"bootstrap": 50},
    # The demo's federated switch is on: one engine, two short FedAvg runs (tests/federated
    # covers the rest).
    "federated": {
        "engines": ["optuna"],
        "n_trials": 2,
        "search_space": {
            "lr": {"type": "choice", "choices": [0.1, 0.01]},
            "rounds": {"type": "choice", "choices": [2, 3]},
        },
    },
}
FL_ENGINES = ["optuna"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, snakemake_tools) -> Path:
    workdir = snakemake_tools.copy(tmp_path_factory.mktemp("pipeline"))
    result = snakemake_tools.run(workdir, configs=[SMALL_DAG])
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_every_output_of_the_dag_exists(pipeline: Path) -> None:
    results = pipeline / "results"
    for engine in ENGINES:
        assert (results / f"hpo/{engine}/trials.csv").is_file()
        assert (results / f"final/{engine}/model/model.pt").is_file()
    for model in MODELS:
        for corpus in CORPORA:
            assert (results / f"eval/{model}/{corpus}.json").is_file()
            assert (results / f"plots/confusion_{model}_{corpus}.png").stat().st_size > 5000


def test_tables_agree_with_trials_and_evaluations(pipeline: Path) -> None:
    results = pipeline / "results"
    efficiency = pd.read_csv(results / "tables/table5_efficiency.csv", comment="#")
    ours = efficiency[efficiency["source"] == "this run"].set_index("engine")
    best_config = pd.read_csv(results / "tables/table4_best_config.csv", comment="#")
    best_config = best_config[best_config["source"] == "this run"].set_index("engine")
    for engine in ENGINES:
        trials = pd.read_csv(results / f"hpo/{engine}/trials.csv")
        assert len(trials) == 2  # the same budget for every engine
        usable = trials[trials["status"] != "failed"]["value"].dropna()
        best = yaml.safe_load((results / f"hpo/{engine}/best.yaml").read_text())
        assert math.isclose(best["value"], usable.max())
        assert math.isclose(ours.loc[engine, "best_valid_bca"], usable.max(), rel_tol=1e-9)
        assert math.isclose(best_config.loc[engine, "valid_bca"], usable.max(), rel_tol=1e-9)
    zero_shot = pd.read_csv(results / "tables/table6_zero_shot.csv", comment="#")
    zero_shot = zero_shot[zero_shot["source"] == "this run"]
    for row in zero_shot.itertuples():
        scores = json.loads((results / f"eval/{row.model}/{row.corpus}.json").read_text())
        assert math.isclose(row.bca, scores["bca"], rel_tol=1e-9)
        # The home corpus is scored on its test part, the others zero-shot on everything.
        assert scores["part"] == ("test" if row.corpus == "emodb" else "all")


def test_a_corpus_read_from_a_table_is_evaluated_zero_shot(pipeline: Path) -> None:
    summary = json.loads((pipeline / "results/manifests/tess.summary.json").read_text())
    assert summary["format"] == "table" and summary["dropped_per_original_label"] == {"ps": 3}
    for model in MODELS:
        scores = json.loads((pipeline / f"results/eval/{model}/tess.json").read_text())
        # Scored on the labels the model shares with tess; every row in the unrestricted score.
        assert (scores["part"], scores["zero_shot"], scores["label_set"]) == ("all", True, "shared")
        assert scores["unrestricted"]["n"] == 18 and scores["n"] <= 18
        assert scores["chance"] == 1 / len(scores["labels"])


def test_only_evaluate_reads_the_test_part(pipeline: Path) -> None:
    split = pd.read_csv(pipeline / "results/splits/emodb.csv")
    test_ids = set(split.loc[split["part"] == "test", "utterance_id"])
    trained_on = json.loads((pipeline / "results/final/optuna/training.json").read_text())
    assert trained_on["parts"] == ["train", "valid"]
    assert trained_on["n_utterances"] == int((split["part"] != "test").sum())
    # The feature cache, filled before the studies, holds no test utterance until evaluate
    # (which reads the same cache) runs after the final models are trained. The untuned
    # head's entries (its own folder) need no final model.
    cache = pipeline / "results/features/emodb"
    entries = [p for p in cache.rglob("*.pt") if "pretrained" not in p.relative_to(cache).parts]
    first_model = min(
        (pipeline / f"results/final/{engine}/model/model.json").stat().st_mtime
        for engine in ENGINES
    )
    test_entries = [
        p for p in entries if any(re.match(rf"{re.escape(i)}\.", p.name) for i in test_ids)
    ]
    assert test_ids and test_entries
    assert all(p.stat().st_mtime >= first_model for p in test_entries)
    assert len(entries) > len(test_entries)


def test_the_report_html_embeds_the_plots(pipeline: Path, snakemake_tools) -> None:
    result = subprocess.run(
        [*snakemake_tools.command, "--cores", "1", "--configfile", "config.yaml",
         "profiles/demo/demo-config.yaml", "extra-0.yaml", "--report", "report.html"],
        cwd=pipeline, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    html = (pipeline / "report.html").read_text(errors="replace")
    assert "best_so_far.png" in html and "confusion_optuna_emodb.png" in html
    # Tables 3-6 and the headline are embedded as HTML pages, which the report shows inline.
    pages = {
        m[1]: base64.b64decode(m[2]).decode()
        for m in re.finditer(
            r"data:text/html;charset=[^;]+;filename=([^;]+);base64,([A-Za-z0-9+/=]+)", html
        )
    }
    for stem in ["table3_time_to_threshold", "table4_best_config", "table5_efficiency",
                 "table6_zero_shot", "headline"]:  # fmt: skip
        page = pages[f"{stem}.html"]
        assert "<table>" in page and "<li>" in page, stem  # the rows, then the notes
    for stem in ["table3_time_to_threshold", "table4_best_config", "table5_efficiency"]:
        assert "<td>paper</td>" in pages[f"{stem}.html"], stem  # report.paper_figures
    assert "<th>paper: tuned</th>" in pages["table6_zero_shot.html"]


def test_an_engine_only_key_reruns_only_that_engine(pipeline: Path, snakemake_tools) -> None:
    changed = {**SMALL_DAG, "hpo": {**SMALL_DAG["hpo"], "n_sobol": 2}}  # read by Ax alone
    result = snakemake_tools.run(pipeline, "-n", configs=[changed])
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {
        m[1]: int(m[2])
        for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", result.stdout.split("Job stats:")[1], re.M)
    }
    assert jobs["hpo"] == 1 and jobs["retrain_final"] == 1
    assert "prepare_corpus" not in jobs and "cache_features" not in jobs
    studies = re.findall(r"rule hpo:.*?wildcards: engine=(\w+)", result.stdout, re.S)
    assert studies == ["ax"]


def test_federated_outputs_agree_with_their_studies(pipeline: Path) -> None:
    results = pipeline / "results/federated"
    summary = pd.read_csv(results / "summary.csv").set_index("engine")
    split = pd.read_csv(pipeline / "results/splits/emodb.csv")
    assert list(summary.index) == FL_ENGINES
    for engine in FL_ENGINES:
        trials = pd.read_csv(results / f"hpo/{engine}/trials.csv")
        assert len(trials) == 2 and set(trials["param_rounds"]) <= {2, 3}
        complete = trials[trials["status"] == "complete"]
        assert math.isclose(summary.loc[engine, "best_valid_bca"], complete["value"].max())
        cpu = complete["extra"].map(lambda text: json.loads(text)["cpu_seconds"])
        assert all(cpu > 0)
        evaluation = json.loads((results / f"eval/{engine}.json").read_text())
        best = evaluation["selections"]["best"]
        assert math.isclose(best["valid_bca"], complete["value"].max())
        home, *zero_shot = best["evaluations"]
        assert home["part"] == "test" and home["n"] == int((split["part"] == "test").sum())
        assert {"ravdess", "cremad"} <= {e["corpus"] for e in zero_shot}
        assert all(e["part"] == "all" and e["zero_shot"] for e in zero_shot)
        assert math.isclose(summary.loc[engine, "best_test_bca"], home["bca"])
    front = pd.read_csv(results / "pareto.csv")
    assert len(front) >= 1 and (results / "pareto.png").stat().st_size > 5000


def test_the_near_best_margin_reruns_the_choice_not_the_studies(pipeline, snakemake_tools) -> None:
    changed = {**SMALL_DAG, "federated": {**SMALL_DAG["federated"], "near_best_margin": 0.05}}
    result = snakemake_tools.run(pipeline, "-n", configs=[changed])
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {
        m[1]: int(m[2])
        for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", result.stdout.split("Job stats:")[1], re.M)
    }
    assert jobs.get("fl_evaluate") == len(FL_ENGINES) and jobs.get("fl_report") == 1
    assert "fl_hpo" not in jobs and "hpo" not in jobs
