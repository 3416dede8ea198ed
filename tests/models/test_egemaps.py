"""The eGeMAPS baseline: 88 openSMILE functionals, standardised, into a Linear layer."""

from __future__ import annotations

import math

import pytest
import torch

from serhpo.data import FeatureItem
from serhpo.models import build_model
from serhpo.models.egemaps import NUM_FEATURES, EGeMAPSFeature


def _voice(seconds: float, f0: float) -> torch.Tensor:
    time = torch.arange(int(16000 * seconds)) / 16000
    pitch = 2 * math.pi * f0 * time
    return 0.2 * sum(torch.sin(k * pitch) / k for k in range(1, 6)).float()


def test_functionals_are_88_and_depend_on_pitch_not_on_padding():
    feature = EGeMAPSFeature()
    low = feature.compute(_voice(1.0, 120.0), valid_samples=16000)
    high = feature.compute(_voice(1.0, 240.0), valid_samples=16000)
    assert low.values.shape == (NUM_FEATURES,) and low.valid_frames == 1
    assert not torch.allclose(low.values, high.values)
    padded = torch.cat([_voice(1.0, 120.0), torch.zeros(16000)])
    assert torch.equal(feature.compute(padded, valid_samples=16000).values, low.values)
    assert "egemaps" in repr(feature)


def test_standardisation_is_fitted_on_the_training_items():
    model = build_model("egemaps", num_classes=3, params={})
    items = [FeatureItem(torch.full((NUM_FEATURES,), float(v)), 1) for v in (1.0, 3.0)]
    model.adapt("train", items)
    assert torch.allclose(model.feature_mean, torch.full((NUM_FEATURES,), 2.0))
    assert torch.allclose(model.feature_std, torch.full((NUM_FEATURES,), 1.0))
    features = torch.stack([item.values for item in items])
    features[0, 0] = float("nan")  # openSMILE may leave a functional undefined
    logits = model(features, torch.ones(2, dtype=torch.long), stage="train")
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert [p.shape for p in model.trainable_parameters("train")] == [(3, NUM_FEATURES), (3,)]


def test_unknown_parameters_are_rejected():
    from serhpo.errors import UserError

    with pytest.raises(UserError, match="accepts \\['dropout'\\]"):
        build_model("egemaps", num_classes=3, params={"arch": "cnn"})
