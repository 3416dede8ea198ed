"""A small fake run for the report tests: three studies, five evaluations and a config.

The studies include failed and pruned trials, a NaN value on a complete trial, an engine that
never reaches 0.8 (grid), one numbered from 0 (optuna), and hyperopt listed in config with no
study (a missing engine).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

NAN = math.nan
LABELS = ["anger", "boredom", "neutral"]

# engine -> rows (trial, lr, epochs, unfreeze, maxlen, value, cumulative_seconds, status)
STUDIES: dict[str, list[tuple]] = {
    "ax": [
        (1, 1e-5, 3, 0, 48000, 0.55, 61.3, "complete"),
        (2, 3e-5, 5, 1, 64000, 0.85, 152.9, "complete"),
        (3, 9e-4, 9, 0, 160000, NAN, 201.7, "failed"),
        (4, 2e-5, 8, 2, 80000, 0.92, 333.1, "complete"),
        (5, 5e-6, 2, 1, 32000, 0.60, 400.4, "pruned"),
    ],
    "optuna": [
        (0, 1e-6, 1, 0, 32000, 0.30, 30.5, "complete"),
        (1, 8e-4, 10, 5, 160000, NAN, 95.0, "failed"),
        (2, 4e-5, 6, 2, 64000, 0.83, 130.25, "pruned"),
        (3, 2e-6, 4, 1, 48000, 0.70, 190.0, "complete"),
        (4, 1e-4, 7, 3, 112000, NAN, 260.0, "complete"),
    ],
    "grid": [
        (1, 1e-6, 1, 0, 32000, 0.20, 100.0, "complete"),
        (2, 3.16e-5, 1, 0, 32000, 0.50, 250.0, "complete"),
        (3, 1e-3, 1, 0, 32000, 0.78, 411.0, "complete"),
    ],
}

# (model, corpus) -> (zero_shot, part, n, bca, ci, confusion)
EVALS: dict[tuple[str, str], tuple] = {
    ("pretrained", "emodb"): (
        True,
        "test",
        9,
        0.3333,
        [0.1, 0.55],
        [[1, 2, 0], [3, 0, 0], [1, 1, 1]],
    ),
    ("pretrained", "ravdess"): (
        True,
        "all",
        6,
        0.25,
        [0.05, 0.5],
        [[0, 2, 0], [1, 1, 0], [0, 1, 1]],
    ),
    ("ax", "emodb"): (False, "test", 9, 0.8889, [0.7, 1.0], [[3, 0, 0], [0, 2, 1], [0, 0, 3]]),
    ("ax", "ravdess"): (True, "all", 6, 0.5, [0.2, 0.8], [[2, 0, 0], [1, 1, 0], [1, 1, 0]]),
    ("optuna", "emodb"): (False, "test", 9, 0.6667, [0.4, 0.9], [[2, 1, 0], [1, 2, 0], [0, 1, 2]]),
}


@dataclass
class FakeRun:
    """Paths of the fake run's inputs and the rows they were written from."""

    root: Path
    trials: list[Path]
    evals: list[Path]
    config: Path
    studies: dict[str, pd.DataFrame]
    evaluations: dict[tuple[str, str], dict]


def _write_study(root: Path, engine: str, rows: list[tuple]) -> tuple[Path, pd.DataFrame]:
    frame = pd.DataFrame(
        rows,
        columns=[
            "trial",
            "param_lr",
            "param_epochs",
            "param_unfreeze",
            "param_maxlen",
            "value",
            "cumulative_seconds",
            "status",
        ],
    )
    frame.insert(
        6, "trial_seconds", frame["cumulative_seconds"].diff().fillna(frame["cumulative_seconds"])
    )
    frame["reason"] = ["diverged: NaN loss" if s == "failed" else "" for s in frame["status"]]
    frame["history"] = "[0.1, 0.2]"
    folder = root / "hpo" / engine
    folder.mkdir(parents=True)
    path = folder / "trials.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _build_fake_run(tmp_path: Path) -> FakeRun:
    """Write the fake run under tmp_path/results and its config under tmp_path."""
    root = tmp_path / "results"
    trials, studies = [], {}
    for engine, rows in STUDIES.items():
        path, frame = _write_study(root, engine, rows)
        trials.append(path)
        studies[engine] = frame
    best = {
        "engine": "ax",
        "trial": 4,
        "params": {"lr": 2e-5},
        "value": 0.92,
        "metric": "valid_bca",
    }
    (root / "hpo" / "ax" / "best.yaml").write_text(yaml.safe_dump(best))
    evals, evaluations = [], {}
    for (model, corpus), (zero_shot, part, n, bca, ci, confusion) in EVALS.items():
        data = {
            "model": model,
            "corpus": corpus,
            "protocol": "speaker",
            "part": part,
            "zero_shot": zero_shot,
            "n": n,
            "labels": LABELS,
            "bca": bca,
            "bca_ci95": ci,
            "accuracy": bca + 0.01,
            "macro_f1": bca - 0.01,
            "per_class_recall": dict.fromkeys(LABELS, bca),
            "confusion": confusion,
        }
        path = root / "eval" / model / f"{corpus}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
        evals.append(path)
        evaluations[(model, corpus)] = data
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "split": {"strategy": "speaker"},
                "corpora": {
                    "emodb": {"source": "synthetic", "role": "tune"},
                    "ravdess": {"source": "synthetic", "role": "zero_shot"},
                },
                "hpo": {"engines": ["ax", "hyperopt", "optuna", "grid"]},
                "report": {"thresholds": [0.8, 0.9], "paper_figures": True},
            }
        )
    )
    return FakeRun(root, trials, evals, config, studies, evaluations)


@pytest.fixture
def fake_run(tmp_path: Path) -> FakeRun:
    """A fresh fake run for one test (which may change its files)."""
    return _build_fake_run(tmp_path)


@pytest.fixture(scope="module")
def shared_fake_run(tmp_path_factory: pytest.TempPathFactory) -> FakeRun:
    """One fake run for a whole test module, for tests that only read it."""
    return _build_fake_run(tmp_path_factory.mktemp("fake_run"))
