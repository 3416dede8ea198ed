"""SER model families: log-Mel heads, the eGeMAPS baseline, wav2vec2 and Whisper.

Each family lives in its own module, imported only when used, that provides::

    def build(name: str, *, num_classes: int, params: dict, backbone_dir: Path | None) -> SERModel

``params`` are the family's own parameters (``arch``, ``embedding_size``, ...); the
module rejects unknown keys with a :class:`~serhpo.errors.UserError`
(:func:`serhpo.models.base.check_params`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from serhpo.data import FeatureItem
from serhpo.errors import UserError
from serhpo.models.base import (
    TRAIN_STAGE,
    FrozenFeature,
    SERModel,
    check_params,
    fingerprint_of,
    frame_mask,
    masked_mean,
)

#: backbone name (config ``backbone.name``) -> module with ``build(name, *, ...)``
FAMILIES: dict[str, str] = {
    "logmel": "serhpo.models.logmel",
    "egemaps": "serhpo.models.egemaps",
    "wav2vec2": "serhpo.models.wav2vec2",
    "tiny_wav2vec2": "serhpo.models.wav2vec2",
    "whisper": "serhpo.models.whisper",
}


def build_model(
    name: str,
    *,
    num_classes: int,
    params: dict[str, Any] | None = None,
    backbone_dir: Path | None = None,
) -> SERModel:
    """Build the model family ``name`` with ``num_classes`` outputs.

    Args:
        name: a key of :data:`FAMILIES` (config ``backbone.name``).
        num_classes: number of target labels.
        params: the family's parameters (architecture and sizes); missing keys take
            the family's defaults.
        backbone_dir: the pretrained model's folder, for families that have one.

    Raises:
        UserError: for an unknown family or parameter.

    Example:
        >>> model = build_model("logmel", num_classes=7, params={"arch": "cnn_gru"})
        >>> model.stages
        ('train',)
    """
    if name not in FAMILIES:
        raise UserError(
            f"unknown backbone/model family {name!r}; expected one of {sorted(FAMILIES)}. "
            "Set backbone.name in config.yaml to one of these."
        )
    module = importlib.import_module(FAMILIES[name])
    return module.build(
        name, num_classes=num_classes, params=dict(params or {}), backbone_dir=backbone_dir
    )


__all__ = [
    "FAMILIES",
    "TRAIN_STAGE",
    "FeatureItem",
    "FrozenFeature",
    "SERModel",
    "build_model",
    "check_params",
    "fingerprint_of",
    "frame_mask",
    "masked_mean",
]
