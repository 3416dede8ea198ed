"""The paper's classifier: SpeechBrain's wav2vec2 encoder, mean pooling, a Linear layer.

The encoder is the ``wav2vec2`` module of the SpeechBrain emotion classifier in a
backbone folder (:mod:`serhpo.backbones`), built as ``EncoderClassifier.from_hparams``
builds it but without evaluating the folder's YAML
(:func:`serhpo.backbones.speechbrain_io.load_backbone`). The model computes, per utterance::

    waveform ─ normalise ─ conv feature extractor ─ projection ─ transformer ─ output norm
             ─ mean over frames ─ Linear ─ logits

Padding never changes the output: the waveform is normalised over its real samples
(padding stays zero), the transformer's attention ignores frames of padding, and the
output norm and the mean use real frames only. (SpeechBrain normalises over the whole
padded signal; for an unpadded utterance both are the same arithmetic.) The padded
samples still pass through the conv extractor, whose first layer normalises over time,
so ``maxlen`` and ``padding`` remain part of each cache entry's name.

Two stages (:attr:`Wav2Vec2Classifier.stages`), as in the paper:

- ``frozen`` (epochs ``1..unfreeze``): the encoder is fixed, so its pooled output per
  utterance is cached (:class:`PooledEncoderFeature`) and an epoch trains only the
  Linear layer on those vectors.
- ``finetune`` (later epochs): the transformer and the Linear layer train; the conv
  feature extractor stays frozen (``freeze_conv``, as in SpeechBrain's IEMOCAP
  recipe), so its output is cached (:class:`ConvFeature`) and a step runs only the
  projection, the transformer and the head. With ``freeze_conv: false`` the stage
  starts from the cached waveform instead.

With ``head: pretrained`` the Linear layer is the backbone's own IEMOCAP head
(``neu``, ``ang``, ``hap``, ``sad``; :data:`serhpo.backbones.speechbrain_io.IEMOCAP_LABELS`)
for zero-shot evaluation: the paper's "pretrained" row.

Example:
    >>> model = build("tiny_wav2vec2", num_classes=7, params={},
    ...               backbone_dir=Path("resources/models/tiny_wav2vec2"))  # doctest: +SKIP
    >>> feature = model.frozen_feature("frozen")  # doctest: +SKIP
    >>> item = feature.compute(torch.randn(32000), valid_samples=24000)  # doctest: +SKIP
    >>> model(item.values[None], torch.tensor([1]), stage="frozen").shape  # doctest: +SKIP
    torch.Size([1, 7])
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from serhpo.backbones.speechbrain_io import (
    IEMOCAP_LABELS,
    WAV2VEC2_SUBDIR,
    Wav2Vec2Backbone,
    check_backbone_folder,
    load_backbone,
    read_checksum,
)
from serhpo.data import FeatureItem
from serhpo.errors import UserError
from serhpo.models.base import (
    FrozenFeature,
    SERModel,
    WaveformFeature,
    check_params,
    fingerprint_of,
    frame_mask,
    masked_mean,
    random_state_kept,
)

FROZEN_STAGE = "frozen"
FINETUNE_STAGE = "finetune"

#: Family parameters and their defaults.
DEFAULTS: dict[str, Any] = {
    "head": "linear",  # linear: a new Linear layer; pretrained: the backbone's IEMOCAP head
    "freeze_conv": True,  # keep the conv feature extractor frozen while fine-tuning
}
HEADS = ("linear", "pretrained")

#: SpeechBrain's output norm and ours use F.layer_norm's default epsilon.
_NORM_EPS = 1e-5
_LOCK = threading.Lock()


# ---------------------------------------------------------------- the pretrained encoder


class PretrainedEncoder:
    """A backbone folder's wav2vec2, loaded once per process and never trained.

    Built by :func:`serhpo.backbones.speechbrain_io.load_backbone`: SpeechBrain's
    modules, parameter for parameter, without evaluating the folder's
    ``hyperparams.yaml`` (a folder from elsewhere cannot run code). Frozen features are
    computed with it; a model that fine-tunes gets its own copy (:meth:`trainable_copy`).

    Attributes:
        folder: the backbone folder (resolved).
        checksum: its checksum (the feature-cache key).
        hidden_size: the encoder's output width.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = check_backbone_folder(folder)
        self.checksum = read_checksum(self.folder)
        config_path = self.folder / WAV2VEC2_SUBDIR / "config.json"
        try:
            self.hidden_size = int(json.loads(config_path.read_text())["hidden_size"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
            raise UserError(
                f"{config_path} is not a wav2vec2 configuration with a hidden_size "
                f"({type(error).__name__}: {error}); rebuild or refetch the backbone folder "
                "(or copy the model folder again)."
            ) from None
        self._backbone: Wav2Vec2Backbone | None = None

    @property
    def backbone(self) -> Wav2Vec2Backbone:
        """The modules (loaded on first use)."""
        with _LOCK:
            if self._backbone is None:
                # Loaded on first use, maybe inside a trial: keep its seeded random stream.
                with random_state_kept():
                    self._backbone = load_backbone(self.folder)
        return self._backbone

    @property
    def model(self) -> nn.Module:
        """The transformers ``Wav2Vec2Model`` (what SpeechBrain's wrapper holds as ``.model``)."""
        return self.backbone.model

    @property
    def normalize_wav(self) -> bool:
        """Whether SpeechBrain normalises the waveform (wav2vec2-base: yes)."""
        return self.backbone.normalize_wav

    @property
    def output_norm(self) -> bool:
        """Whether SpeechBrain layer-normalises the encoder output (the IEMOCAP model: yes)."""
        return self.backbone.output_norm

    def head_weight(self) -> torch.Tensor:
        """The IEMOCAP head's weight ``(4, hidden_size)``, read from ``model.ckpt``."""
        return self.backbone.head_weight

    def trainable_copy(self) -> nn.Module:
        """A private copy of the transformers model, to fine-tune."""
        model = copy.deepcopy(self.model)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model


@functools.lru_cache(maxsize=4)
def _pretrained(folder: str, checksum: str) -> PretrainedEncoder:
    # Keyed by checksum too, so a rebuilt folder is reloaded.
    return PretrainedEncoder(Path(folder))


def pretrained_encoder(folder: Path) -> PretrainedEncoder:
    """The process-wide :class:`PretrainedEncoder` of a backbone folder.

    Example:
        >>> encoder = pretrained_encoder(Path("resources/models/tiny_wav2vec2"))  # doctest: +SKIP
        >>> encoder.hidden_size  # doctest: +SKIP
        32
    """
    folder = check_backbone_folder(folder)
    return _pretrained(str(folder), read_checksum(folder))


# ---------------------------------------------------------------- the arithmetic, in pieces


def normalize_waveforms(waveforms: torch.Tensor, valid_samples: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over each waveform's real samples; padding stays zero.

    For an unpadded waveform this is SpeechBrain's ``F.layer_norm(wav, wav.shape[1:])``.

    Example:
        >>> out = normalize_waveforms(torch.tensor([[1.0, 3.0, 0.0]]), torch.tensor([2]))
        >>> out
        tensor([[-1.0000,  1.0000,  0.0000]])
    """
    real = frame_mask(valid_samples, waveforms.shape[1])
    mask = real.to(waveforms.dtype)
    count = mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (waveforms * mask).sum(dim=1, keepdim=True) / count
    variance = (((waveforms - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
    normalized = (waveforms - mean) / torch.sqrt(variance + _NORM_EPS)
    return normalized.masked_fill(~real, 0.0)


def masked_layer_norm(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Normalise each ``(frames, dim)`` sequence over its real frames and all dims.

    For an unpadded sequence this is SpeechBrain's output norm,
    ``F.layer_norm(out, out.shape[1:])``; padded frames come out as zero.

    Example:
        >>> masked_layer_norm(torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([2]))
        tensor([[[-1.0000],
                 [ 1.0000],
                 [ 0.0000]]])
    """
    mask = frame_mask(lengths, frames.shape[1]).to(frames.dtype).unsqueeze(-1)
    count = (mask.sum(dim=(1, 2), keepdim=True) * frames.shape[2]).clamp_min(1.0)
    mean = (frames * mask).sum(dim=(1, 2), keepdim=True) / count
    variance = (((frames - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / count
    return (frames - mean) / torch.sqrt(variance + _NORM_EPS) * mask


def conv_features(
    model: nn.Module, waveforms: torch.Tensor, valid_samples: torch.Tensor, *, normalize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv feature extractor's output ``(batch, frames, channels)`` and real frames.

    Example:
        >>> feats, frames = conv_features(model, torch.randn(1, 16000), torch.tensor([16000]),
        ...                               normalize=True)  # doctest: +SKIP
        >>> feats.shape[1], frames.tolist()  # doctest: +SKIP
        (49, [49])
    """
    if normalize:
        waveforms = normalize_waveforms(waveforms, valid_samples)
    features = model.feature_extractor(waveforms).transpose(1, 2)
    frames = model._get_feat_extract_output_lengths(valid_samples).to(torch.int64)
    return features, frames.clamp(min=1, max=features.shape[1])


def encode_conv_features(
    model: nn.Module,
    features: torch.Tensor,
    frames: torch.Tensor,
    *,
    output_norm: bool,
    trim: bool = True,
) -> torch.Tensor:
    """From conv features to the (normalised) last hidden states; padding frames masked.

    The steps of ``transformers``' ``Wav2Vec2Model.forward`` after the conv extractor
    (projection, time masking, which SpeechBrain switches off, transformer), then
    SpeechBrain's output norm over real frames.

    With ``trim`` the frames after the longest real one are dropped before the
    transformer: they are masked anyway (zeroed before the positional convolution,
    never attended to), so the real frames' outputs are the same and padding to
    ``maxlen`` costs no transformer time.

    Returns:
        ``(batch, frames, hidden)``; with ``trim``, ``frames`` is ``max(frames)``.

    Example:
        >>> hidden = encode_conv_features(model, feats, frames, output_norm=True)  # doctest: +SKIP
    """
    if trim:
        features = features[:, : int(frames.max())]
    attention_mask = frame_mask(frames, features.shape[1])
    hidden, _ = model.feature_projection(features)
    hidden = model._mask_hidden_states(hidden, attention_mask=attention_mask)
    hidden = model.encoder(hidden, attention_mask=attention_mask).last_hidden_state
    if output_norm:
        hidden = masked_layer_norm(hidden, frames)
    return hidden


# ---------------------------------------------------------------- frozen features (cached)


class _EncoderFeature(FrozenFeature):
    """Shared parts of the wav2vec2 frozen features: lazy encoder, batching by length."""

    version: ClassVar[int] = 1

    def __init__(self, backbone_dir: Path) -> None:
        self.backbone_dir = check_backbone_folder(backbone_dir)
        self._fingerprint: str | None = None

    @property
    def encoder(self) -> PretrainedEncoder:
        return pretrained_encoder(self.backbone_dir)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            import transformers

            self._fingerprint = fingerprint_of(
                kind=self.name,
                version=self.version,
                backbone=read_checksum(self.backbone_dir),
                torch=torch.__version__.split("+")[0],
                transformers=transformers.__version__,
            )
        return self._fingerprint

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        return self.compute_batch([waveform], valid_samples=[valid_samples])[0]

    def compute_batch(
        self, waveforms: Sequence[torch.Tensor], *, valid_samples: Sequence[int]
    ) -> list[FeatureItem]:
        # Only equal lengths go in one batch: the first conv layer normalises over time,
        # so extra batch padding would change an utterance's features.
        items: list[FeatureItem | None] = [None] * len(waveforms)
        groups: dict[int, list[int]] = {}
        for index, waveform in enumerate(waveforms):
            groups.setdefault(int(waveform.shape[0]), []).append(index)
        # no_grad, not inference_mode: callers may train on the returned tensors.
        with torch.no_grad():
            for indices in groups.values():
                batch = torch.stack([waveforms[i].float() for i in indices])
                valid = torch.tensor([valid_samples[i] for i in indices], dtype=torch.int64)
                for index, item in zip(indices, self._compute(batch, valid), strict=True):
                    items[index] = item
        return items  # type: ignore[return-value]

    def _compute(self, waveforms: torch.Tensor, valid: torch.Tensor) -> list[FeatureItem]:
        raise NotImplementedError


class ConvFeature(_EncoderFeature):
    """The conv feature extractor's output ``(frames, channels)``: the fine-tuning input."""

    name: ClassVar[str] = "wav2vec2-cnn"
    sequence: ClassVar[bool] = True

    def _compute(self, waveforms: torch.Tensor, valid: torch.Tensor) -> list[FeatureItem]:
        encoder = self.encoder
        features, frames = conv_features(
            encoder.model, waveforms, valid, normalize=encoder.normalize_wav
        )
        return [
            FeatureItem(values=row.clone(), valid_frames=int(count))
            for row, count in zip(features, frames, strict=True)
        ]


class PooledEncoderFeature(_EncoderFeature):
    """The frozen encoder's output, normalised and averaged over real frames ``(hidden,)``."""

    name: ClassVar[str] = "wav2vec2-pooled"

    def _compute(self, waveforms: torch.Tensor, valid: torch.Tensor) -> list[FeatureItem]:
        encoder = self.encoder
        features, frames = conv_features(
            encoder.model, waveforms, valid, normalize=encoder.normalize_wav
        )
        hidden = encode_conv_features(
            encoder.model, features, frames, output_norm=encoder.output_norm
        )
        pooled = masked_mean(hidden, frames)
        return [FeatureItem(values=row.clone(), valid_frames=1) for row in pooled]


# ---------------------------------------------------------------- the trainable model


class Wav2Vec2Classifier(SERModel):
    """wav2vec2 encoder + mean pooling + Linear, trained in a frozen then a fine-tuning stage.

    The trainable copy of the encoder is made on first need (fine-tuning parameters,
    a fine-tuning forward, or loading a state dict that holds it), so that a trial that
    never unfreezes only trains the Linear layer on cached vectors.

    Attributes:
        head: the Linear layer ``hidden_size -> num_classes``.
        encoder: the fine-tuned transformers ``Wav2Vec2Model`` (``None`` until needed).
        class_labels: with ``head: pretrained``, IEMOCAP's labels in output order.
    """

    family: ClassVar[str] = "wav2vec2"
    stages: ClassVar[tuple[str, ...]] = (FROZEN_STAGE, FINETUNE_STAGE)

    def __init__(self, *, num_classes: int, params: dict[str, Any], backbone_dir: Path) -> None:
        params = check_params(self.family, params, DEFAULTS)
        if params["head"] not in HEADS:
            raise UserError(
                f"wav2vec2 head {params['head']!r} is unknown; expected one of {list(HEADS)}. "
                "Fix model.head in config.yaml."
            )
        if params["head"] == "pretrained" and num_classes != len(IEMOCAP_LABELS):
            raise UserError(
                f"the pretrained IEMOCAP head has {len(IEMOCAP_LABELS)} outputs "
                f"{list(IEMOCAP_LABELS)}; got num_classes={num_classes}. Evaluate it with "
                "its own labels and map them (serhpo.backbones.speechbrain_io.IEMOCAP_TO_TARGET)."
            )
        super().__init__(num_classes=num_classes, params=params)
        self.backbone_dir = check_backbone_folder(backbone_dir)
        self._pretrained = pretrained_encoder(self.backbone_dir)
        self.freeze_conv = bool(params["freeze_conv"])
        self.head = nn.Linear(self._pretrained.hidden_size, num_classes)
        self.class_labels: tuple[str, ...] | None = None
        if params["head"] == "pretrained":
            with torch.no_grad():
                self.head.weight.copy_(self._pretrained.head_weight())
                self.head.bias.zero_()  # SpeechBrain's IEMOCAP head has no bias
            self.class_labels = IEMOCAP_LABELS
        self.encoder: nn.Module | None = None
        self._features = {
            FROZEN_STAGE: PooledEncoderFeature(self.backbone_dir),
            FINETUNE_STAGE: ConvFeature(self.backbone_dir),
        }

    # -- the encoder copy, made when first needed

    def ensure_encoder(self) -> nn.Module:
        """Make (once) and return the trainable copy of the encoder, on the head's device."""
        if self.encoder is None:
            encoder = self._pretrained.trainable_copy()
            if self.freeze_conv:
                encoder.feature_extractor._freeze_parameters()
            self.encoder = encoder.to(self.head.weight.device)
            self.encoder.train(self.training)
        return self.encoder

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any):
        if any(key.startswith(prefix + "encoder.") for key in state_dict):
            self.ensure_encoder()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- the SERModel interface

    def frozen_feature(self, stage: str) -> FrozenFeature:
        if stage == FINETUNE_STAGE and not self.freeze_conv:
            return WaveformFeature()  # fine-tuning starts at the waveform
        return self._features[stage]

    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        if stage == FROZEN_STAGE:
            return list(self.head.parameters())
        encoder = self.ensure_encoder()
        frozen = {id(p) for p in encoder.feature_extractor.parameters()} if self.freeze_conv else ()
        trainable = [p for p in encoder.parameters() if id(p) not in frozen]
        return trainable + list(self.head.parameters())

    def set_stage(self, stage: str) -> None:
        super().set_stage(stage)
        if stage == FINETUNE_STAGE and self.freeze_conv:
            # Keep transformers from asking for input gradients through the frozen convs.
            self.ensure_encoder().feature_extractor._freeze_parameters()

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, *, stage: str) -> torch.Tensor:
        if stage == FROZEN_STAGE:
            return self.head(features)
        return self.head(masked_mean(*self.encode(features, lengths)))

    def encode(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fine-tuning path: cached conv features (or waveforms) to hidden states, frames."""
        encoder = self.ensure_encoder()
        lengths = lengths.to(torch.int64)
        if self.freeze_conv:
            frames = lengths
        else:
            features, frames = conv_features(
                encoder, features, lengths, normalize=self._pretrained.normalize_wav
            )
        hidden = encode_conv_features(
            encoder, features, frames, output_norm=self._pretrained.output_norm
        )
        return hidden, frames

    def forward_waveforms(
        self, waveforms: torch.Tensor, valid_samples: torch.Tensor, *, trim: bool = True
    ) -> torch.Tensor:
        """The whole model from preprocessed waveforms ``(batch, samples)`` to logits.

        With the encoder still untouched (never fine-tuned) this is the frozen stage's
        arithmetic; afterwards the fine-tuned encoder's. Used for prediction on new
        files and to check the cached paths against. ``trim=False`` runs the padding
        frames through the transformer too (same result, the naive cost).

        Example:
            >>> logits = model.forward_waveforms(torch.randn(2, 16000),
            ...                                  torch.tensor([16000, 12000]))  # doctest: +SKIP
        """
        encoder = self.ensure_encoder()
        valid_samples = valid_samples.to(torch.int64)
        features, frames = conv_features(
            encoder, waveforms, valid_samples, normalize=self._pretrained.normalize_wav
        )
        hidden = encode_conv_features(
            encoder, features, frames, output_norm=self._pretrained.output_norm, trim=trim
        )
        return self.head(masked_mean(hidden, frames))


def build(
    name: str, *, num_classes: int, params: dict[str, Any], backbone_dir: Path | None = None
) -> Wav2Vec2Classifier:
    """Build the wav2vec2 classifier on a backbone folder (``wav2vec2`` or ``tiny_wav2vec2``).

    Raises:
        UserError: without a backbone folder, or for unknown parameters.

    Example:
        >>> build("tiny_wav2vec2", num_classes=7, params={"freeze_conv": True},
        ...       backbone_dir=Path("resources/models/tiny_wav2vec2")).stages  # doctest: +SKIP
        ('frozen', 'finetune')
    """
    if backbone_dir is None:
        raise UserError(
            f"model family {name!r} needs a backbone folder; none was given. Pass "
            "--backbone-dir (build one with `serhpo build-tiny-backbone DIR` or "
            "`serhpo fetch-backbone DIR`)."
        )
    return Wav2Vec2Classifier(num_classes=num_classes, params=params, backbone_dir=backbone_dir)


def pretrained_model(backbone_dir: Path) -> Wav2Vec2Classifier:
    """The backbone's own IEMOCAP classifier (no tuning), for zero-shot evaluation.

    Its outputs are :data:`~serhpo.backbones.speechbrain_io.IEMOCAP_LABELS`; map them
    onto the target labels with :data:`~serhpo.backbones.speechbrain_io.IEMOCAP_TO_TARGET`.

    Example:
        >>> model = pretrained_model(Path("resources/models/wav2vec2"))  # doctest: +SKIP
        >>> model.class_labels  # doctest: +SKIP
        ('neu', 'ang', 'hap', 'sad')
    """
    model = build(
        "wav2vec2",
        num_classes=len(IEMOCAP_LABELS),
        params={"head": "pretrained"},
        backbone_dir=backbone_dir,
    )
    model.set_stage(FROZEN_STAGE)
    return model.eval()


__all__ = [
    "DEFAULTS",
    "FINETUNE_STAGE",
    "FROZEN_STAGE",
    "ConvFeature",
    "PooledEncoderFeature",
    "PretrainedEncoder",
    "Wav2Vec2Classifier",
    "build",
    "conv_features",
    "encode_conv_features",
    "masked_layer_norm",
    "normalize_waveforms",
    "pretrained_encoder",
    "pretrained_model",
]
