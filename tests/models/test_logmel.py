"""The log-Mel front end and every head: shapes, masking of padding, parameters."""

from __future__ import annotations

import pytest
import torch

from serhpo.data import FeatureItem, collate
from serhpo.errors import UserError
from serhpo.models import build_model
from serhpo.models.logmel import ARCHITECTURES, LogMelFeature

SMALL = {"n_mels": 16, "channels": 4, "conv_blocks": 2, "embedding_size": 16, "num_heads": 2}


def test_feature_has_one_frame_per_hop_and_counts_the_real_ones():
    feature = LogMelFeature(n_mels=40)
    waveform = torch.zeros(16000)
    waveform[:8000] = torch.randn(8000)
    item = feature.compute(waveform, valid_samples=8000)
    assert item.values.shape == (101, 40) and item.values.dtype == torch.float16
    assert item.valid_frames == 51
    assert torch.isfinite(item.values.float()).all()
    # silence has far less energy than noise
    assert item.values[:40].float().mean() > item.values[60:].float().mean() + 5


def test_fingerprint_follows_the_front_end_parameters_only():
    assert LogMelFeature(n_mels=64).fingerprint() == LogMelFeature(n_mels=64).fingerprint()
    assert LogMelFeature(n_mels=64).fingerprint() != LogMelFeature(n_mels=40).fingerprint()
    assert LogMelFeature(hop_ms=10).fingerprint() != LogMelFeature(hop_ms=20).fingerprint()
    cnn = build_model("logmel", num_classes=3, params={"arch": "cnn"})
    mlp = build_model("logmel", num_classes=3, params={"arch": "mlp", "dropout": 0.5})
    assert cnn.frozen_feature("train").fingerprint() == mlp.frozen_feature("train").fingerprint()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_head_trains_and_ignores_padding(arch):
    torch.manual_seed(0)
    model = build_model("logmel", num_classes=5, params={**SMALL, "arch": arch})
    short = FeatureItem(torch.randn(37, 16), 37)
    long = FeatureItem(torch.randn(80, 16), 80)
    model.adapt("train", [short, long])
    assert model.band_std.min() > 0

    features, lengths = collate([short, long])
    model.train()
    logits = model(features, lengths, stage="train")
    assert logits.shape == (2, 5)
    logits.logsumexp(dim=1).sum().backward()
    trainable = model.trainable_parameters("train")
    assert trainable and all(p.grad is not None for p in trainable)

    model.eval()
    with torch.no_grad():
        alone = model(short.values[None], torch.tensor([37]), stage="train")
        padded = model(features, lengths, stage="train")[:1]
    torch.testing.assert_close(alone, padded, rtol=1e-4, atol=1e-5)


def test_unknown_architecture_or_parameter_is_a_user_error():
    with pytest.raises(UserError, match="expected one of"):
        build_model("logmel", num_classes=3, params={"arch": "lstm"})
    with pytest.raises(UserError, match="unknown parameter"):
        build_model("logmel", num_classes=3, params={"embeding_size": 3})
    with pytest.raises(UserError, match="not divisible"):
        build_model("logmel", num_classes=3, params={"arch": "transformer", "num_heads": 5})


def test_sizes_change_the_model():
    small = build_model("logmel", num_classes=7, params={"arch": "cnn", "embedding_size": 32})
    large = build_model("logmel", num_classes=7, params={"arch": "cnn", "embedding_size": 256})
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(large) > count(small)
    assert small.params["embedding_size"] == 32 and small.stages == ("train",)
