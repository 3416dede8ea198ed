"""The training keys (TrainingConfig) and ``serhpo train``.

The trainer itself is tested in test_trainer.py, on the synthetic split of conftest.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from serhpo import cli
from serhpo.config import load_schema
from serhpo.errors import UserError
from serhpo.final import load_final_model
from serhpo.normalisation import NORMALISE_MODES
from serhpo.training import TrainingConfig

#: The labels of conftest's trainer split.
TRAINER_LABELS = ["anger", "happiness", "neutral", "sadness"]


def test_bad_training_values_are_user_errors():
    # A trial's values (from the search space) are checked against the schema's ranges.
    with pytest.raises(UserError, match=r"training.lr: -1.0 is less than or equal to the min"):
        TrainingConfig.split_params({"lr": -1})
    with pytest.raises(UserError, match=r"training.epochs: 2.5 is not of type 'integer'"):
        TrainingConfig.split_params({"epochs": 2.5})
    with pytest.raises(UserError, match=r"training.normalise: 'utterance' is not one of"):
        TrainingConfig.split_params({"normalise": "utterance"})
    with pytest.raises(UserError, match=r"Fix training: or search_space: in config.yaml"):
        TrainingConfig.split_params({"maxlen": 100})
    config, model = TrainingConfig.split_params(
        {"epochs": np.int64(3), "maxlen": 48000.0, "padding": "off", "arch": "cnn"}
    )
    assert (config.epochs, config.maxlen, config.padding, model) == (
        3,
        48000,
        False,
        {"arch": "cnn"},
    )


def test_training_keys_have_no_defaults_but_the_schemas():
    schema = load_schema()["properties"]["training"]["properties"]
    assert TrainingConfig.field_names() == set(schema)
    assert set(NORMALISE_MODES) == set(schema["normalise"]["enum"])
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(TrainingConfig))
    config, model = TrainingConfig.split_params({})
    assert dataclasses.asdict(config) == {key: entry["default"] for key, entry in schema.items()}
    assert model == {}


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
