"""The tiny wav2vec2 backbone: seeded, and loaded offline the way the real model is."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from serhpo.backbones.speechbrain_io import (
    CHECKSUM_FILE,
    IEMOCAP_LABELS,
    load_encoder_classifier,
    read_checksum,
)
from serhpo.backbones.tiny import build_tiny_backbone
from serhpo.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("backbones") / "tiny"
    build_tiny_backbone(folder, seed=0)
    return folder


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the Hugging Face Hub fails."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_same_seed_same_bytes_other_seed_other_weights(tiny: Path, tmp_path: Path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    key_again = build_tiny_backbone(again, seed=0)
    key_other = build_tiny_backbone(other, seed=1)

    assert key_again == read_checksum(tiny)  # another folder, same checksum
    for name in ("wav2vec2.ckpt", "model.ckpt", "wav2vec2/model.safetensors"):
        assert (again / name).read_bytes() == (tiny / name).read_bytes(), name
    assert key_other != key_again
    assert (other / "wav2vec2.ckpt").read_bytes() != (tiny / "wav2vec2.ckpt").read_bytes()


def test_loads_offline_through_encoder_classifier_like_the_real_model(
    tiny: Path, tmp_path: Path, offline: None
):
    from speechbrain.inference.classifiers import EncoderClassifier

    classifier = EncoderClassifier.from_hparams(source=str(tiny), savedir=str(tmp_path / "sb"))

    wav2vec2 = classifier.mods.wav2vec2
    assert type(wav2vec2).__module__ == "speechbrain.integrations.huggingface.wav2vec2"
    # SpeechBrain's pretrainer put the "fine-tuned" checkpoint over the base weights.
    finetuned = torch.load(tiny / "wav2vec2.ckpt", weights_only=True)
    loaded = wav2vec2.state_dict()
    assert set(loaded) == set(finetuned)
    assert all(torch.equal(loaded[key], finetuned[key]) for key in finetuned)
    head = torch.load(tiny / "model.ckpt", weights_only=True)["0.w.weight"]
    assert torch.equal(classifier.mods.output_mlp.w.weight, head)
    assert classifier.hparams.label_encoder.ind2lab == dict(enumerate(IEMOCAP_LABELS))

    # The IEMOCAP model's inference pipeline: wav2vec2, average pooling, output_mlp.
    with torch.no_grad():
        frames = wav2vec2(torch.randn(2, 16000))
        pooled = classifier.mods.avg_pool(frames).view(2, -1)
        probabilities = classifier.hparams.softmax(classifier.mods.output_mlp(pooled))
    assert frames.shape == (2, 49, 32)  # wav2vec2-base's 20 ms frames
    assert probabilities.shape == (2, len(IEMOCAP_LABELS))
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(2))


def test_a_moved_folder_still_loads(tmp_path: Path, offline: None):
    first = tmp_path / "first"
    key = build_tiny_backbone(first, seed=0)
    moved = tmp_path / "moved here"
    first.rename(moved)
    assert str(first.resolve()) in (moved / "hyperparams.yaml").read_text()

    classifier = load_encoder_classifier(moved)
    assert classifier.hparams.wav2vec2_hub == str((moved / "wav2vec2").resolve())
    assert classifier.mods.wav2vec2(torch.zeros(1, 8000)).shape == (1, 24, 32)
    assert read_checksum(moved) == key


def test_cli_builds_and_prints_the_checksum(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "cli"
    assert main(["build-tiny-backbone", str(out), "--seed", "3", "--hidden-size", "16"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == (out / CHECKSUM_FILE).read_text().strip()
    assert "encoder_dim: 16" in (out / "hyperparams.yaml").read_text()
