"""The Snakemake workflow itself: lint, config validation, the demo's data stage and rerun scope.

These run `snakemake` in a copy of the workflow files inside a temporary folder, so that the
project's own results/ and resources/ are never touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.snakemake

# Small enough to keep the suite fast, big enough for a speaker split (3 parts).
SMALL = {
    "corpora": {
        name: {"source": "synthetic", "synthetic": {"speakers": 4, "per_speaker_label": 3}}
        for name in ("emodb", "ravdess", "cremad")
    },
    "split": {"strategy": "speaker"},
}
DATA_TARGETS = [f"results/splits/{c}.csv" for c in ("emodb", "ravdess", "cremad")]


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


@pytest.fixture(scope="module")
def built_demo(tmp_path_factory: pytest.TempPathFactory, snakemake_tools) -> Path:
    workdir = snakemake_tools.copy(tmp_path_factory.mktemp("demo"))
    result = snakemake_tools.run(workdir, *DATA_TARGETS, configs=[SMALL])
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_lint_is_clean(snakemake_tools) -> None:
    result = subprocess.run(
        [*snakemake_tools.command, "--lint"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_demo_builds_manifests_and_splits_of_three_corpora(built_demo: Path) -> None:
    for corpus in ("emodb", "ravdess", "cremad"):
        manifest = pd.read_csv(
            built_demo / f"results/manifests/{corpus}.csv", keep_default_na=False
        )
        split = pd.read_csv(built_demo / f"results/splits/{corpus}.csv", dtype={"speaker": str})
        assert len(manifest) > 0 and set(manifest["corpus"]) == {corpus}
        assert set(split["part"]) == {"train", "valid", "test"}
        speakers = split.groupby("part")["speaker"].apply(set)
        assert not (speakers["train"] & speakers["test"])
        assert (manifest["path"].map(lambda p: (built_demo / p).is_file())).all()


def test_changing_a_split_key_reruns_only_the_split(built_demo: Path, snakemake_tools) -> None:
    changed = {**SMALL, "split": {"strategy": "speaker", "valid_fraction": 0.3}}
    result = snakemake_tools.run(built_demo, "-n", *DATA_TARGETS, configs=[changed])
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout)
    assert jobs.get("split_corpus") == 3
    assert "prepare_corpus" not in jobs and "synthesize_corpus" not in jobs


def test_nothing_reruns_when_nothing_changed(built_demo: Path, snakemake_tools) -> None:
    result = snakemake_tools.run(built_demo, "-n", *DATA_TARGETS, configs=[SMALL])
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_bad_config_key_stops_before_any_work(tmp_path: Path, snakemake_tools) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    result = snakemake_tools.run(workdir, configs=[{"split": {"strategy": "random"}}])
    assert result.returncode != 0
    assert "'random' is not one of ['stratified', 'speaker']" in result.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def test_rules_are_formatted_with_snakefmt() -> None:
    files = ["Snakefile", *sorted(str(p) for p in (REPO_ROOT / "workflow/rules").glob("*.smk"))]
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_corpus_without_a_reader_stops_before_any_work(tmp_path: Path, snakemake_tools) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    result = snakemake_tools.run(workdir, configs=[{"corpora": {"savee": {"source": "SAVEE"}}}])
    assert result.returncode != 0
    assert "corpus 'savee' has no reader" in result.stderr
    assert "corpora.savee.format to table" in result.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def test_a_local_table_corpus_is_prepared_and_editing_its_table_reruns_it(
    tmp_path: Path, snakemake_tools
) -> None:
    from serhpo.corpora.synthetic import synthesize_corpus

    workdir = snakemake_tools.copy(tmp_path)
    synthesize_corpus(
        "table", workdir / "data/mine", n_speakers=3, utterances_per_speaker_label=1, seed=0,
        duration_s=(0.5, 0.6),
    )  # fmt: skip
    table = pd.read_csv(workdir / "data/mine/table.csv", dtype=str)
    table.rename(columns={"emotion": "mood"}).to_csv(workdir / "data/mine/labels.csv", index=False)
    mine = {
        "source": "data/mine",
        "format": "table",
        "table": "labels.csv",
        "columns": {"label": "mood"},
        "label_map": {"angry": "anger", "happy": "happiness", "sad": "sadness", "ps": None},
    }
    config = {"corpora": {"mine": mine}}
    target = "results/manifests/mine.csv"
    result = snakemake_tools.run(workdir, target, configs=[config])
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = pd.read_csv(workdir / target, keep_default_na=False)
    assert len(manifest) == 21 and set(manifest["word"]) <= set(table["word"])
    assert (manifest["label"] == "").sum() == 3  # ps, dropped and counted

    table.iloc[:-1].rename(columns={"emotion": "mood"}).to_csv(
        workdir / "data/mine/labels.csv", index=False
    )
    result = snakemake_tools.run(workdir, "-n", target, configs=[config])
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result.stdout) == {"prepare_corpus": 1}
