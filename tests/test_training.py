"""The training keys (TrainingConfig) and ``serhpo train``.

The trainer itself is tested in test_trainer.py, on the synthetic split of conftest.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from serhpo import cli
from serhpo.errors import UserError
from serhpo.final import load_final_model
from serhpo.training import TrainingConfig

#: The labels of conftest's trainer split.
TRAINER_LABELS = ["anger", "happiness", "neutral", "sadness"]


def test_bad_training_values_are_user_errors():
    with pytest.raises(UserError, match="lr must be a positive number"):
        TrainingConfig.split_params({"lr": -1})
    with pytest.raises(UserError, match="'epochs' got 2.5"):
        TrainingConfig.split_params({"epochs": 2.5})
    with pytest.raises(UserError, match="normalise must be one of"):
        TrainingConfig.split_params({"normalise": "utterance"})
    assert TrainingConfig().normalise == "none"
    config, model = TrainingConfig.split_params(
        {"epochs": np.int64(3), "maxlen": 48000.0, "padding": "off", "arch": "cnn"}
    )
    assert (config.epochs, config.maxlen, config.padding, model) == (
        3,
        48000,
        False,
        {"arch": "cnn"},
    )


def test_train_stage_prints_and_writes_scores(
    trainer_split_csv, trainer_cache_dir, tmp_path, capsys
):
    output = tmp_path / "scores.json"
    status = cli.main(
        [
            "train", str(trainer_split_csv), "--backbone", "logmel",
            "--cache-dir", str(trainer_cache_dir),
            "--param", "arch=mlp", "--param", "epochs=2", "--param", "lr=3e-3",
            "--param", "maxlen=16000", "--param", "n_mels=32", "--param", "threads=1",
            "--output", str(output),
        ]
    )  # fmt: skip
    assert status == 0
    scores = json.loads(output.read_text())
    assert scores["status"] == "complete" and len(scores["history"]) == 2
    assert set(scores["scores"]) >= {"bca", "accuracy", "macro_f1", "confusion"}
    assert json.loads(capsys.readouterr().out)["value"] == scores["value"]


def test_train_model_dir_is_a_model_folder_that_evaluate_and_predict_read(
    trainer_split_csv, trainer_cache_dir, tmp_path
):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"seed": 3, "target_labels": TRAINER_LABELS}))
    status = cli.main(
        [
            "train", str(trainer_split_csv), "--config", str(config), "--backbone", "logmel",
            "--cache-dir", str(trainer_cache_dir), "--param", "arch=mlp", "--param", "epochs=2",
            "--param", "lr=3e-3", "--param", "maxlen=16000", "--param", "n_mels=32",
            "--param", "threads=1", "--model-dir", str(tmp_path / "model"),
            "--output", str(tmp_path / "scores.json"),
        ]
    )  # fmt: skip
    assert status == 0
    final = load_final_model(tmp_path / "model")  # refused a folder without a format before
    assert final.metadata["format"] == "serhpo-model" and final.metadata["seed"] == 3
    assert final.preprocessing.maxlen == 16000 and set(final.labels) == set(TRAINER_LABELS)
    assert final.probabilities([torch.zeros(16000)]).shape == (1, len(TRAINER_LABELS))
