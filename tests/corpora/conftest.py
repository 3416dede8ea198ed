"""A small synthetic EmoDB and its built-in manifest, for the generic readers' round trips."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from serhpo.corpora import get_format
from serhpo.corpora.synthetic import synthesize_corpus
from serhpo.prepare import prepare_corpus

TARGETS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]


@pytest.fixture(scope="session")
def small_emodb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic EmoDB of 3 speakers and 21 files (wav/SSTTTEV.wav)."""
    root = tmp_path_factory.mktemp("small_emodb") / "emodb"
    synthesize_corpus(
        "emodb", root, n_speakers=3, utterances_per_speaker_label=1, seed=1, duration_s=(0.8, 1.0)
    )
    return root


@pytest.fixture(scope="session")
def small_emodb_manifest(
    small_emodb: Path, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    """The built-in EmoDB reader's manifest of :func:`small_emodb`."""
    return prepare_corpus(
        corpus="emodb",
        fmt=get_format("emodb"),
        raw_dir=small_emodb,
        out_dir=tmp_path_factory.mktemp("small_emodb_16k"),
        target_labels=TARGETS,
    ).manifest
