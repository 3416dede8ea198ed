"""The DAG with backbone.name: whisper (profiles/whisper/whisper-config.yaml), small and offline.

Synthetic corpora, Optuna, two trials: cache, HPO, retrain, evaluation
in-corpus and zero-shot, report, then ``serhpo predict`` on a final model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.snakemake, pytest.mark.slow]

ENGINES = ["optuna"]  # one engine keeps the DAG short; the profile runs optuna and random
SMALL = {
    "corpora": {
        "emodb": {"source": "synthetic", "synthetic": {"speakers": 4, "per_speaker_label": 2}},
        "ravdess": {"source": "synthetic", "synthetic": {"speakers": 3, "per_speaker_label": 1}},
        # One zero-shot corpus is enough here (tests/test_pipeline.py scores all of them):
        # null removes the others, eight jobs fewer.
        "cremad": None,
        "tess": None,
    },
    "model": {"window": "utterance"},
    "search_space": {
        "window": None,  # the 30-s window costs 15 times more; tests/models covers it
        "head": {"type": "choice", "choices": ["logreg", "linear"]},
        "layer": {"type": "choice", "choices": ["2", "weighted"]},
        "normalise": {"type": "choice", "choices": ["none", "speaker"]},
        "epochs": {"type": "int", "low": 1, "high": 3, "when": {"head": "linear"}},
    },
    "hpo": {"engines": ENGINES, "n_trials": 2},
    "evaluation": {"bootstrap": 20},
    "federated": {"enabled": False},
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, snakemake_tools) -> Path:
    workdir = snakemake_tools.copy(tmp_path_factory.mktemp("whisper-dag"))
    profile = yaml.safe_load((workdir / "profiles/whisper/whisper-config.yaml").read_text())
    result = snakemake_tools.run(workdir, configs=[profile, SMALL])
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_the_whisper_dag_runs_from_corpora_to_report(pipeline: Path) -> None:
    results = pipeline / "results"
    summary = json.loads((results / "features/emodb/whisper.summary.json").read_text())
    assert [e["model_params"] for e in summary["entries"]] == [{"window": "utterance"}]
    for engine in ENGINES:
        trials = pd.read_csv(results / f"hpo/{engine}/trials.csv")
        assert len(trials) == 2 and (trials["status"] == "complete").all()
        metadata = json.loads((results / f"final/{engine}/model/model.json").read_text())
        assert metadata["backbone"] == "whisper" and metadata["backbone_encoder"]["embedded"]
        for corpus in ("emodb", "ravdess"):
            scores = json.loads((results / f"eval/{engine}/{corpus}.json").read_text())
            assert scores["n"] > 0 and 0.0 <= scores["bca"] <= 1.0  # in-corpus and zero-shot
    assert not (results / "eval/pretrained").exists()  # no pretrained head for whisper
    zero_shot = pd.read_csv(results / "tables/table6_zero_shot.csv", comment="#")
    assert set(ENGINES) <= set(zero_shot.astype(str).to_numpy().ravel())
    assert (results / "plots/param_effects.png").stat().st_size > 5000


def test_predict_labels_files_with_a_final_model(pipeline: Path) -> None:
    wavs = sorted((pipeline / "results").rglob("*.wav"))[:2] or sorted(pipeline.rglob("*.wav"))[:2]
    model = pipeline / "results/final/optuna/model"
    result = subprocess.run(
        [sys.executable, "-m", "serhpo.cli", "predict", str(model), *map(str, wavs),
         "--format", "json"],
        capture_output=True, text=True, cwd=pipeline, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(json.loads(result.stdout)) == 2
