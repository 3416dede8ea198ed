"""The model interface: stage schedule, freezing, masks, parameter checks, the registry."""

from __future__ import annotations

import random
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from serhpo.data import FeatureItem
from serhpo.errors import UserError
from serhpo.models import FAMILIES, build_model
from serhpo.models.base import (
    FrozenFeature,
    SERModel,
    check_params,
    fingerprint_of,
    frame_mask,
    masked_mean,
    random_state_kept,
)


class _Identity(FrozenFeature):
    name: ClassVar[str] = "identity"

    def fingerprint(self) -> str:
        return fingerprint_of(kind="identity")

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        return FeatureItem(values=waveform[:, None], valid_frames=valid_samples)


class _TwoStage(SERModel):
    family: ClassVar[str] = "demo"
    stages: ClassVar[tuple[str, ...]] = ("frozen", "finetune")

    def __init__(self, *, num_classes: int, params: dict[str, Any]) -> None:
        super().__init__(num_classes=num_classes, params=params)
        self.encoder = nn.Linear(1, 4)
        self.head = nn.Linear(4, num_classes)

    def frozen_feature(self, stage: str) -> FrozenFeature:
        return _Identity()

    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        head = list(self.head.parameters())
        return head if stage == "frozen" else head + list(self.encoder.parameters())

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, *, stage: str) -> torch.Tensor:
        return self.head(masked_mean(self.encoder(features), lengths))


def test_unfreeze_counts_the_frozen_epochs():
    model = _TwoStage(num_classes=2, params={})
    assert [model.stage_for_epoch(e, unfreeze=2) for e in (1, 2, 3, 4)] == [
        "frozen", "frozen", "finetune", "finetune",
    ]  # fmt: skip
    assert model.stage_for_epoch(1, unfreeze=0) == "finetune"
    single = build_model("logmel", num_classes=2, params={"arch": "mlp"})
    assert single.stage_for_epoch(1, unfreeze=3) == "train"


def test_set_stage_freezes_everything_but_the_stage_parameters():
    model = _TwoStage(num_classes=2, params={})
    model.set_stage("frozen")
    assert not model.encoder.weight.requires_grad and model.head.weight.requires_grad
    model.set_stage("finetune")
    assert model.encoder.weight.requires_grad and model.stage == "finetune"
    with pytest.raises(ValueError, match="has stages"):
        model.set_stage("train")


def test_masked_mean_and_frame_mask_ignore_padding():
    frames = torch.tensor([[[1.0], [3.0], [50.0]], [[2.0], [4.0], [6.0]]])
    assert masked_mean(frames, torch.tensor([2, 3])).squeeze(1).tolist() == [2.0, 4.0]
    assert frame_mask(torch.tensor([0, 2]), 3).tolist() == [
        [True, False, False],
        [True, True, False],
    ]


def test_check_params_and_registry_errors_name_the_choices():
    assert check_params("demo", {"a": 2}, {"a": 1, "b": 0}) == {"a": 2, "b": 0}
    with pytest.raises(UserError, match=r"unknown parameter\(s\) \['c'\]"):
        check_params("demo", {"c": 1}, {"a": 1})
    with pytest.raises(UserError, match="expected one of"):
        build_model("mfcc", num_classes=2)
    assert {"logmel", "egemaps", "wav2vec2"} <= set(FAMILIES)


def test_fingerprint_is_order_independent_and_sensitive():
    assert fingerprint_of(a=1, b="x") == fingerprint_of(b="x", a=1)
    assert fingerprint_of(a=1) != fingerprint_of(a=2)


def test_random_state_kept_leaves_every_global_stream_where_it_was():
    def draws() -> tuple:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = draws()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with random_state_kept():  # what loading a pretrained network does: build, then fill
        nn.Linear(8, 8), random.random(), np.random.rand(3)
    assert draws() == expected
    before = torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    with pytest.raises(RuntimeError), random_state_kept():  # also when the loader fails
        torch.rand(5), np.random.rand(5), random.random()
        raise RuntimeError("unreadable checkpoint")
    assert torch.equal(torch.random.get_rng_state(), before[0])
    assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]
