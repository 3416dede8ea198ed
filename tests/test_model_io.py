"""Model folders: what save_model writes, load_model rebuilds exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from serhpo.data import Preprocessing, load_split
from serhpo.errors import UserError
from serhpo.features import FeatureCache
from serhpo.metrics import balanced_accuracy
from serhpo.model_io import MODEL_FORMAT, audio_provenance, load_model, save_model
from serhpo.trainer import TrainingData, fit, predict_logits, predict_utterances

#: The labels of conftest's trainer split.
LABELS = ["anger", "happiness", "neutral", "sadness"]
CNN = {
    "n_mels": 32, "channels": 8, "conv_blocks": 2, "embedding_size": 32, "dropout": 0.1,
    "lr": 3e-3, "batch_size": 8, "maxlen": 16000, "threads": 1,
}  # fmt: skip


def test_a_saved_model_predicts_the_same(trainer_split_csv, trainer_cache_dir, tmp_path):
    split = load_split(trainer_split_csv, labels=LABELS)
    data = TrainingData(
        split=split, cache=FeatureCache(trainer_cache_dir, backbone="logmel"), backbone="logmel"
    )
    outcome = fit({**CNN, "epochs": 2, "arch": "transformer"}, data, seed=1)
    folder = save_model(outcome, tmp_path / "model", data=data, provenance={"seed": 1})
    model, metadata = load_model(folder)
    assert metadata["labels"] == LABELS and metadata["training"]["epochs"] == 2
    assert metadata["format"] == MODEL_FORMAT and metadata["seed"] == 1
    assert metadata["result"]["value"] == outcome.result.value  # finite: written as a number
    assert (folder / "label_encoder.txt").is_file() and not (folder / "backbone").exists()
    valid = data.split.parts["valid"]
    items = data.cache.get_many(model.frozen_feature("train"), valid, Preprocessing(maxlen=16000))
    logits = predict_utterances(model, valid, cache=data.cache, maxlen=16000)
    assert torch.equal(predict_logits(outcome.model, items), logits)
    predictions = logits.argmax(dim=1).numpy()
    assert balanced_accuracy(data.split.targets("valid"), predictions) == outcome.result.value

    metadata_path = folder / "model.json"
    written = json.loads(metadata_path.read_text())
    metadata_path.write_text(json.dumps({**written, "format": None}))
    with pytest.raises(UserError, match="has format None"):
        load_model(folder)


def test_a_model_folder_records_the_audio_checks_of_its_training_data():
    recorded = audio_provenance({"audio": {"min_duration_s": 0.5, "loudness": {"lufs": -23}}})
    assert recorded["audio_checks"]["min_duration_s"] == 0.5
    assert recorded["loudness"] == {"lufs": -23}
    assert audio_provenance({}) == {"audio_checks": {}, "loudness": {}}  # AudioChecks' defaults


def test_a_folder_without_a_model_says_what_to_run(tmp_path: Path):
    with pytest.raises(UserError, match="retrain_final"):
        load_model(tmp_path)
