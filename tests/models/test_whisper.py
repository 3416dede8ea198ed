"""The whisper family: per-layer embeddings cached once per window, three heads, normalise."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pytest
import torch

from serhpo.data import Preprocessing, collate, load_split
from serhpo.errors import UserError
from serhpo.features import FeatureCache, cache_features
from serhpo.model_io import load_model, save_model
from serhpo.models import build_model
from serhpo.models.whisper import WhisperLayersFeature, audio_frames
from serhpo.normalisation import normalise_items
from serhpo.trainer import TrainingData, fit, predict_logits

LABELS = ["anger", "happiness", "neutral", "sadness"]
#: The cheap window (a fifteenth of the 30-s one's cost) for the learning tests.
FAST = {"window": "utterance", "maxlen": None, "threads": 1}


def _voice(seconds: float = 1.5, f0: float = 150.0) -> torch.Tensor:
    time = torch.arange(int(16000 * seconds)) / 16000
    phase = 2 * math.pi * f0 * time * (1 + 0.1 * torch.sin(2 * math.pi * 2 * time))
    return (0.2 * sum(torch.sin(k * phase) / k for k in range(1, 6))).float()


@pytest.fixture(scope="module")
def split_csv(tmp_path_factory, make_synthetic_split):
    folder = tmp_path_factory.mktemp("whisper")
    make_synthetic_split(folder, speakers=4, per_label=3, seed=0, labels=LABELS)
    return folder / "split.csv"


@pytest.fixture(scope="module")
def data(split_csv, tmp_path_factory):
    split = load_split(split_csv, parts=("train", "valid"), labels=LABELS)
    cache = FeatureCache(tmp_path_factory.mktemp("cache"), backbone="whisper")
    return TrainingData(split=split, cache=cache, backbone="whisper")


def test_every_hidden_state_is_pooled_and_matches_stored_values():
    # values of the generated tone, rounded: layer 4 means (first four dims), layer 2 stds
    stored = {
        "30s": ([-0.4837, 0.5378, -0.8118, 0.3069], [0.4170, 0.4664, 0.5594, 0.3161]),
        "utterance": ([-0.1789, 0.3678, -0.9662, -0.1830], [0.3926, 0.4336, 0.4549, 0.3095]),
    }
    voice = _voice()
    for window, (means, stds) in stored.items():
        item = WhisperLayersFeature(None, window=window).compute(voice, valid_samples=len(voice))
        assert item.values.shape == (5, 768) and item.valid_frames == 1
        assert item.values[4, :4].tolist() == pytest.approx(means, abs=2e-3)
        assert item.values[2, 384:388].tolist() == pytest.approx(stds, abs=2e-3)


def test_stored_values_of_a_real_recording(shared_corpora):
    import soundfile
    import soxr

    path = shared_corpora / "emodb-2s" / "wav" / "03a01Fa.wav"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in the shared EmoDB copy")
    samples, rate = soundfile.read(path, dtype="float32")
    audio = torch.from_numpy(soxr.resample(samples, rate, 16000))
    item = WhisperLayersFeature(None, window="utterance").compute(audio, valid_samples=len(audio))
    layer_4_means = [-0.2810, -0.1219, -0.4464, -0.1658]
    layer_2_means = [0.6065, 0.4404, 0.5337, 0.9514]
    assert item.values[4, :4].tolist() == pytest.approx(layer_4_means, abs=2e-3)
    assert item.values[2, :4].tolist() == pytest.approx(layer_2_means, abs=2e-3)


def test_only_frames_that_hold_audio_are_pooled():
    voice = _voice(1.0)
    padded = torch.cat([voice, torch.zeros(16000)])
    feature = WhisperLayersFeature(None, window="utterance")
    alone = feature.compute(voice, valid_samples=len(voice))
    assert torch.allclose(feature.compute(padded, valid_samples=16000).values, alone.values)
    assert audio_frames(16000, 3000) == 50 and audio_frames(16001, 3000) == 51
    assert WhisperLayersFeature(None, window="30s").fingerprint() != feature.fingerprint()


def test_each_utterance_is_embedded_once_per_window_and_shared_by_every_trial(data, split_csv):
    utterances = data.split.parts["train"]
    before = data.cache.stats.computed
    trials = [
        {"head": "logreg", "C": 0.1, "layer": 2, "pooling": "mean"},
        {"head": "svm", "C": 1.0, "layer": "mean", "pooling": "mean_std"},
        {"head": "linear", "layer": "weighted", "lr": 3e-3, "epochs": 3, "batch_size": 8},
    ]
    for params in trials:
        assert fit({**FAST, **params}, data, seed=0).result.status.value == "complete"
    parts = len(utterances) + len(data.split.parts["valid"])
    assert data.cache.stats.computed - before == parts  # the first trial computed them, once
    # The pipeline's cache_features stage computes each window the search space names, once.
    summary = cache_features(
        split_csv,
        cache_dir=data.cache.root,
        backbone="whisper",
        model_choices={"window": ["utterance", "30s"]},
        maxlens=[None],
        parts=["valid"],
        labels=LABELS,
    )
    windows = {e["model_params"]["window"]: e for e in summary["entries"]}
    assert windows["utterance"]["computed"] == 0 and windows["utterance"]["loaded"] == 9
    assert windows["30s"]["computed"] == 9


@pytest.mark.parametrize(
    "params",
    [
        {"head": "logreg", "C": 0.1, "layer": 2},
        {"head": "svm", "C": 0.1, "layer": "mean", "pooling": "mean_std"},
        {"head": "linear", "layer": "weighted", "lr": 3e-3, "epochs": 15, "batch_size": 8},
    ],
)
def test_heads_learn_well_above_chance(data, params):
    outcome = fit({**FAST, **params}, data, seed=0)
    assert outcome.result.value > 0.5  # chance: 0.25
    if params["head"] != "linear":
        assert len(outcome.result.history) == 1  # fitted once, scored once
    else:
        assert len(outcome.result.history) == 15
        assert outcome.model.layer_logits.abs().max() > 0  # the layer mix was trained


def test_normalise_per_speaker_uses_no_labels_and_reaches_the_trainer(data):
    utterances = data.split.parts["train"]
    feature = WhisperLayersFeature(None, window="utterance")
    items = data.cache.get_many(feature, utterances, Preprocessing(maxlen=None))
    labels = [u.label for u in utterances]
    random.Random(0).shuffle(labels)
    shuffled = [
        dataclasses.replace(u, label=label) for u, label in zip(utterances, labels, strict=True)
    ]
    out = normalise_items(items, utterances, mode="speaker", sequence=feature.sequence)
    again = normalise_items(items, shuffled, mode="speaker", sequence=feature.sequence)
    assert all(torch.equal(a.values, b.values) for a, b in zip(out, again, strict=True))
    assert not torch.allclose(out[0].values, items[0].values)
    # The trainer standardises per speaker before the model's own statistics: their mean is 0.
    params = {**FAST, "head": "logreg", "layer": 3}
    plain = fit(params, data, seed=0).model
    per_speaker = fit({**params, "normalise": "speaker"}, data, seed=0).model
    assert per_speaker.feature_mean.abs().max() < 1e-4 < plain.feature_mean.abs().max()


def test_a_scikit_learn_head_saves_as_tensors_and_predicts_the_same(data, tmp_path):
    outcome = fit({**FAST, "head": "svm", "C": 0.5, "layer": 1, "normalise": "corpus"}, data)
    save_model(outcome, tmp_path / "model", data=data)
    torch.load(tmp_path / "model" / "model.pt", weights_only=True)  # no pickle needed
    loaded, metadata = load_model(tmp_path / "model")
    assert metadata["training"]["normalise"] == "corpus"
    items = data.cache.get_many(
        loaded.frozen_feature("train"), data.split.parts["valid"], Preprocessing(maxlen=None)
    )
    assert torch.equal(predict_logits(outcome.model, items), predict_logits(loaded, items))


def test_the_final_model_names_its_embedded_encoder(data, tmp_path):
    from serhpo.final import load_final_model

    outcome = fit(
        {**FAST, "head": "logreg", "layer": 2, "epochs": 5},
        data,
        train_part=["train", "valid"],
        valid_part=None,
    )
    assert outcome.result.extra["train_loss"] == 0.0  # fitted once: no gradient epochs
    folder = save_model(outcome, tmp_path / "model", data=data)
    record = json.loads((folder / "model.json").read_text())["backbone_encoder"]
    assert record["embedded"] and len(record["model_bin_sha256"]) == 64
    assert not (folder / "backbone").exists()  # the installed package holds the weights
    final = load_final_model(folder)
    assert final.normalise == "none"
    assert final.logits([_voice(), _voice(1.2, 220.0)]).shape == (2, len(LABELS))
    record["model_bin_sha256"] = "0" * 64
    with pytest.raises(UserError, match="trained on the Whisper encoder"):
        final.model.check_backbone_record(record)


def test_bad_parameters_are_refused():
    with pytest.raises(UserError, match="0 \\(embedding output\\) to 4"):
        build_model("whisper", num_classes=4, params={"layer": 5})
    with pytest.raises(UserError, match="head is 'tree'"):
        build_model("whisper", num_classes=4, params={"head": "tree"})
    with pytest.raises(UserError, match="accepts"):
        build_model("whisper", num_classes=4, params={"arch": "cnn"})
    assert build_model("whisper", num_classes=4, params={"layer": "3"}).layer == 3


def test_the_fine_tuning_stage_starts_from_the_frozen_arithmetic(data):
    # Before training, the top layers' copies give the cached frozen feature again, with
    # batch padding kept out of attention (utterance window) or Whisper's padding attended (30s).
    utterances = data.split.parts["valid"][:3]
    for window in ("utterance", "30s"):
        model = build_model(
            "whisper", num_classes=4, params={"finetune_layers": 2, "window": window}
        )
        assert model.stages == ("frozen", "finetune")
        prep = Preprocessing(maxlen=None)
        frozen = data.cache.get_many(model.frozen_feature("frozen"), utterances, prep)
        mel = data.cache.get_many(model.frozen_feature("finetune"), utterances, prep)
        features, lengths = collate(mel)
        with torch.no_grad():
            pooled = model.pool_mel(features, lengths)
        expected = torch.stack([item.values for item in frozen])
        assert torch.allclose(pooled, expected, atol=1e-4)


def test_two_stage_fine_tuning_trains_the_top_layers_and_saves_them(data, tmp_path):
    params = {**FAST, "finetune_layers": 1, "layer": "weighted", "lr": 3e-3, "epochs": 6,
              "unfreeze": 3, "batch_size": 8}  # fmt: skip
    outcome = fit(params, data, seed=0)
    model = outcome.model
    assert outcome.result.extra["stage"] == "finetune" and outcome.result.value > 0.5
    untouched = build_model("whisper", num_classes=4, params={"finetune_layers": 1})
    assert not torch.equal(model.top_layers[0].fc1.weight, untouched.top_layers[0].fc1.weight)
    save_model(outcome, tmp_path / "model", data=data)
    loaded, _ = load_model(tmp_path / "model")
    assert loaded.stage == "finetune"
    items = data.cache.get_many(
        loaded.frozen_feature("finetune"), data.split.parts["valid"], Preprocessing(maxlen=None)
    )
    assert torch.equal(predict_logits(model, items), predict_logits(loaded, items))
    with pytest.raises(UserError, match="cannot be fine-tuned"):
        build_model("whisper", num_classes=4, params={"finetune_layers": 1, "head": "svm"})
    # A study records this as a failed trial with the reason (build_objective).
    with pytest.raises(ValueError, match="cannot apply to the whisper-mel feature"):
        fit({**params, "normalise": "speaker", "unfreeze": 0, "epochs": 1}, data)


def test_a_custom_whisper_folder_travels_with_the_final_model(data, tmp_path):
    import shutil

    from serhpo.backbones.whisper import default_whisper_dir
    from serhpo.final import load_final_model

    custom = tmp_path / "whisper-tiny-ct2"
    shutil.copytree(default_whisper_dir(), custom)
    custom_data = dataclasses.replace(data, backbone_dir=custom)
    before = data.cache.stats.computed
    outcome = fit({**FAST, "head": "logreg", "layer": 3}, custom_data)
    assert data.cache.stats.computed == before  # same model.bin checksum: the same entries
    folder = save_model(outcome, tmp_path / "model", data=custom_data)
    record = json.loads((folder / "model.json").read_text())["backbone_encoder"]
    assert record["name"] == "whisper-tiny-ct2" and not record["embedded"]
    assert (folder / "backbone" / "model.bin").is_file()
    shutil.rmtree(custom)  # the model runs from its own copy
    assert load_final_model(folder).logits([_voice()]).shape == (1, len(LABELS))
