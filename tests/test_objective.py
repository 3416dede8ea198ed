"""One set-up from config for every stage that trains: data, parameters, objective."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from serhpo.errors import UserError
from serhpo.objective import (
    build_objective,
    family_settings,
    trainer_objective,
    training_data,
    trial_params,
)
from serhpo.trainer import TrainingData
from serhpo.trial import TrialStatus, never_prune

#: The labels of conftest's trainer split.
LABELS = ["anger", "happiness", "neutral", "sadness"]

MODEL = {"n_mels": 32, "channels": 8, "conv_blocks": 2, "embedding_size": 32}
CONFIG = {
    "seed": 0,
    "target_labels": LABELS,
    "backbone": {"name": "logmel"},
    "model": MODEL,
    "training": {"batch_size": 8, "threads": 1, "maxlen": 16000},
}


def test_the_objective_loads_once_and_never_reads_the_test_part(
    trainer_split_csv: Path, trainer_cache_dir: Path
) -> None:
    objective = build_objective(CONFIG, split_csv=trainer_split_csv, cache_dir=trainer_cache_dir)
    data: TrainingData = objective.loaded.data
    assert set(data.split.parts) == {"train", "valid"}  # test rows point at no file
    first = objective({"lr": 3e-3, "epochs": 2, "arch": "mlp"}, never_prune)
    # The first trial computed the features (or read them from disk, if an earlier test
    # left them there): the second, of the same feature, computes none.
    computed = data.cache.stats.computed
    assert computed in (0, len(data.split.parts["train"]) + len(data.split.parts["valid"]))
    second = objective({"lr": 1e-3, "epochs": 2, "arch": "cnn", "maxlen": 16000}, never_prune)
    assert first.ok and second.ok and len(second.history) == 2
    assert data.cache.stats.computed == computed
    with pytest.raises(UserError, match="unknown parameter"):
        objective({"lr": 1e-3, "epochs": 1, "learning_rate": 0.1}, never_prune)


def test_a_trial_that_raises_fails_and_the_objective_travels_to_workers_unloaded(
    trainer_split_csv: Path, trainer_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serhpo.objective

    objective = trainer_objective(CONFIG, split_csv=trainer_split_csv, cache_dir=trainer_cache_dir)
    copy = pickle.loads(pickle.dumps(objective))  # what a worker process gets: nothing loaded
    assert copy._loaded is None

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(serhpo.objective, "train_and_evaluate", broken)
    result = copy({"lr": 1e-3, "epochs": 1}, never_prune)
    assert result.status == TrialStatus.FAILED
    assert result.reason == "raised RuntimeError: out of memory"
    assert pickle.loads(pickle.dumps(copy))._loaded is None  # loaded data is never pickled


def test_every_stage_reads_the_same_keys() -> None:
    config = {
        "backbone": {"name": "wav2vec2", "dir": "resources/models/wav2vec2"},
        "features": {"cache_dir": "cache"},
        "model": {"arch": "cnn", "dropout": 0.1},
        "training": {"lr": 1e-4, "epochs": 5},
        "federated": {"model": {"arch": "mlp"}, "training": {"lr": 0.1}},
    }
    assert family_settings(config) == (
        "wav2vec2",
        Path("cache"),
        Path("resources/models/wav2vec2"),
    )
    assert family_settings(config, cache_dir=Path("x"), backbone_dir=Path("y"))[1:] == (
        Path("x"),
        Path("y"),
    )
    assert trial_params(config, {"lr": 3e-4}) == {
        "arch": "cnn",
        "dropout": 0.1,
        "lr": 3e-4,
        "epochs": 5,
    }
    assert trial_params(config, {"rounds": 3}, section=config["federated"]) == {
        "arch": "mlp",
        "lr": 0.1,
        "rounds": 3,
    }


def test_training_data_reads_the_parts_and_fold_it_is_asked_for(
    trainer_split_csv: Path, tmp_path: Path
) -> None:
    import pandas as pd

    table = pd.read_csv(trainer_split_csv)
    table["fold"] = [i % 3 for i in range(len(table))]
    with_folds = tmp_path / "split.csv"
    table.to_csv(with_folds, index=False)
    config = {**CONFIG, "backbone": {"name": "egemaps", "dir": "not/for/this/family"}}

    data = training_data(config, split=with_folds, fold=1, cache_dir=tmp_path / "cache")
    development = table[table["part"] != "test"]
    assert len(data.split.parts["valid"]) == int((development["fold"] == 1).sum())
    assert data.backbone == "egemaps" and data.backbone_dir == Path("not/for/this/family")
    assert set(data.split.labels) == set(LABELS)

    federated = training_data(config, split=trainer_split_csv, family="logmel", cache_dir=tmp_path)
    assert federated.backbone == "logmel" and federated.backbone_dir is None
    assert federated.cache.backbone == "logmel"
