"""Fixtures shared by several test modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
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


# ---- the trainer's synthetic split (tests of trainer, training, objective, model_io) --------

#: Four emotions: chance BCA 0.25.
TRAINER_LABELS = ["anger", "happiness", "neutral", "sadness"]


@pytest.fixture(scope="session")
def trainer_split_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trainer's tests' split: a synthetic EmoDB-layout corpus, 6 speakers x 4 utterances
    per label of :data:`TRAINER_LABELS` (1.0-1.5 s), split at random (seed 0) into 72 train
    and 24 valid utterances; its 3 test rows point at files that do not exist."""
    folder = tmp_path_factory.mktemp("synthetic")
    from serhpo.corpora.synthetic import synthesize_corpus

    files = synthesize_corpus(
        "emodb", folder / "raw", n_speakers=6, utterances_per_speaker_label=4, seed=0,
        duration_s=(1.0, 1.5),
    )  # fmt: skip
    files = files[files["label"].isin(TRAINER_LABELS)].reset_index(drop=True)
    rng = np.random.default_rng(0)
    split = pd.DataFrame(
        {
            "utterance_id": files["path"].map(lambda p: Path(p).stem),
            "path": files["path"],
            "corpus": "synthetic",
            "speaker": files["speaker"],
            "label": files["label"],
            "num_samples": (files["duration_s"] * 16000).round().astype(int),
            "part": ["valid" if rng.random() < 0.3 else "train" for _ in range(len(files))],
        }
    )
    test_rows = split.head(3).assign(part="test", path="never/read.wav")
    path = folder / "split.csv"
    pd.concat([split, test_rows]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def trainer_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the trainer's tests: features are computed once for all."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture
def write_trials_csv():
    """Write a small trials.csv (two trials, one failed); keyword columns replace or drop (None)."""

    def write(path: Path, **columns: list) -> Path:
        base = {
            "trial": [1, 2],
            "param_lr": [1e-5, 1e-4],
            "value": [0.5, None],
            "cumulative_seconds": [10.0, 20.0],
            "status": ["complete", "failed"],
        }
        base.update(columns)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({k: v for k, v in base.items() if v is not None}).to_csv(path, index=False)
        return path

    return write
