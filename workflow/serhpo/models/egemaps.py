"""The classical baseline: openSMILE eGeMAPSv02 functionals (88) and a linear classifier.

The classifier is a standardised multinomial logistic regression written as a torch
``Linear`` layer and trained by the same loop as every other family (AdamW,
cross-entropy, cosine schedule), rather than scikit-learn's ``LogisticRegression``:
that way the baseline goes through the same HPO engines, search space, per-epoch
reports, pruning and failure handling, and its numbers are comparable trial for trial.
The standardisation (mean and standard deviation per feature) is fitted on the
training part only. ``benchmarks/realdata_emodb.py`` checks it against scikit-learn's
standardised linear models on the real EmoDB copy.

Functionals are computed on the real audio only: the zero-padding that ``maxlen``
adds for batching would otherwise count as pauses in the voicing and loudness
statistics.

Example:
    >>> model = build("egemaps", num_classes=7, params={})
    >>> model.frozen_feature("train").compute(torch.randn(32000), valid_samples=32000).values.shape
    torch.Size([88])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from serhpo.data import FeatureItem
from serhpo.models.base import (
    TRAIN_STAGE,
    FrozenFeature,
    SERModel,
    check_params,
    fingerprint_of,
)

SAMPLE_RATE = 16000

#: Number of eGeMAPSv02 functionals.
NUM_FEATURES = 88

#: Family parameters and their defaults.
DEFAULTS: dict[str, Any] = {"dropout": 0.0}


class EGeMAPSFeature(FrozenFeature):
    """openSMILE eGeMAPSv02 functionals of the real (unpadded) audio, ``(88,)`` float32."""

    name: ClassVar[str] = "egemaps"

    def __init__(self) -> None:
        self._smile = None

    def fingerprint(self) -> str:
        import opensmile

        return fingerprint_of(
            kind="egemaps",
            version=1,
            opensmile=opensmile.__version__,
            feature_set="eGeMAPSv02",
            level="Functionals",
        )

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        if self._smile is None:
            import opensmile  # slow to import; only needed when something is not cached

            self._smile = opensmile.Smile(
                feature_set=opensmile.FeatureSet.eGeMAPSv02,
                feature_level=opensmile.FeatureLevel.Functionals,
            )
        signal = waveform[: max(valid_samples, 1)].double().numpy()
        values = self._smile.process_signal(signal, SAMPLE_RATE).to_numpy()[0]
        return FeatureItem(values=torch.tensor(values, dtype=torch.float32), valid_frames=1)


class EGeMAPSModel(SERModel):
    """Standardised functionals into a Linear layer (multinomial logistic regression)."""

    family: ClassVar[str] = "egemaps"
    stages: ClassVar[tuple[str, ...]] = (TRAIN_STAGE,)

    def __init__(self, *, num_classes: int, params: dict[str, Any]) -> None:
        params = check_params(self.family, params, DEFAULTS)
        super().__init__(num_classes=num_classes, params=params)
        self.feature = EGeMAPSFeature()
        self.register_buffer("feature_mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("feature_std", torch.ones(NUM_FEATURES))
        self.dropout = nn.Dropout(params["dropout"])
        self.linear = nn.Linear(NUM_FEATURES, num_classes)

    def frozen_feature(self, stage: str) -> FrozenFeature:
        return self.feature

    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        return list(self.linear.parameters())

    def adapt(self, stage: str, train_items: Sequence[FeatureItem]) -> None:
        """Fit the standardisation on the training part's functionals."""
        values = torch.stack([item.values.float() for item in train_items])
        self.feature_mean.copy_(values.nanmean(dim=0))
        spread = (values - self.feature_mean).pow(2).nanmean(dim=0).sqrt()
        self.feature_std.copy_(spread.clamp_min(1e-6))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, *, stage: str) -> torch.Tensor:
        standardised = torch.nan_to_num((features - self.feature_mean) / self.feature_std)
        return self.linear(self.dropout(standardised))


def build(
    name: str, *, num_classes: int, params: dict[str, Any], backbone_dir: Path | None = None
) -> EGeMAPSModel:
    """Build the eGeMAPS baseline (``backbone_dir`` is unused).

    Example:
        >>> build("egemaps", num_classes=7, params={"dropout": 0.1}).linear.out_features
        7
    """
    return EGeMAPSModel(num_classes=num_classes, params=params)
