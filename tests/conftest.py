"""Fixtures shared by several test modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO_ROOT.parent / "shared" / "corpora"


@pytest.fixture
def shared_corpora() -> Path:
    """The real recordings beside the project (read-only); skips when absent."""
    if not SHARED_CORPORA.is_dir():
        pytest.skip("../shared/corpora is not present on this machine")
    return SHARED_CORPORA


# ---- running Snakemake on a temporary copy of the workflow -------------------------------
# A copy keeps the project's own results/ and resources/ untouched.

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_workflow(target: Path) -> Path:
    """Copy the files Snakemake reads (not the package, which is installed) into ``target``."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO_ROOT / name, target / name)
    for folder in ("workflow/rules", "workflow/schemas", "workflow/report", "profiles", "envs"):
        if (REPO_ROOT / folder).is_dir():
            shutil.copytree(REPO_ROOT / folder, target / folder)
    return target


def run_snakemake(
    workdir: Path, *args: str, configs: list[dict] | None = None
) -> subprocess.CompletedProcess:
    """Run the demo's config plus ``configs`` (written as extra-N.yaml) in ``workdir``."""
    files = ["config.yaml", "profiles/demo/demo-config.yaml"]
    for number, extra in enumerate(configs or []):
        path = workdir / f"extra-{number}.yaml"
        path.write_text(yaml.safe_dump(extra))
        files.append(path.name)
    return subprocess.run(
        # Targets and flags first: --configfile takes every name that follows it.
        [*SNAKEMAKE, "--cores", "2", *args, "--configfile", *files],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="session")
def snakemake_tools() -> SimpleNamespace:
    """Helpers for tests that run the workflow: copy_workflow, run and the command."""
    return SimpleNamespace(copy=copy_workflow, run=run_snakemake, command=SNAKEMAKE)


# ---- a prepared synthetic corpus and its split --------------------------------------------

TARGET_LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]


def synthetic_split(
    folder: Path, *, speakers: int, per_label: int, seed: int, labels: list[str] | None = None
) -> pd.DataFrame:
    """Synthesize an EmoDB-style corpus in ``folder``, prepare it and split it (stratified,
    test and valid 25 %). The split is also written to ``folder / "split.csv"``."""
    from serhpo.corpora import get_format
    from serhpo.corpora.synthetic import synthesize_corpus
    from serhpo.prepare import prepare_corpus
    from serhpo.splits import split_manifest

    synthesize_corpus(
        "emodb", folder / "raw", n_speakers=speakers, utterances_per_speaker_label=per_label,
        seed=seed, duration_s=(1.0, 1.5),
    )  # fmt: skip
    prepared = prepare_corpus(
        corpus="emodb", fmt=get_format("emodb"), raw_dir=folder / "raw",
        out_dir=folder / "16k", target_labels=labels or TARGET_LABELS,
    )  # fmt: skip
    split = split_manifest(prepared.manifest, test_fraction=0.25, valid_fraction=0.25, seed=0)
    split.to_csv(folder / "split.csv", index=False)
    return split


@pytest.fixture(scope="session")
def make_synthetic_split():
    """:func:`synthetic_split`, for module-scoped fixtures."""
    return synthetic_split
