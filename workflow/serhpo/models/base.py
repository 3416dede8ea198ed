"""What every SER model family provides to the trainer and to the feature cache.

A model is split into a FROZEN part, computed once per utterance by a
:class:`FrozenFeature` and cached on disk (see :mod:`serhpo.features`), and a
TRAINABLE part, the :class:`SERModel` itself (a ``torch.nn.Module``), which maps a
batch of cached features to class logits.

Training may have several stages. Each stage names the frozen computation it needs
and the parameters it trains:

==============  ===================  ===============================  =====================
family          stage                frozen feature (cached)          trainable
==============  ===================  ===============================  =====================
logmel          ``train``            log-Mel spectrogram (T, n_mels)   the head (cnn, ...)
egemaps         ``train``            eGeMAPSv02 functionals (88,)      a Linear layer
wav2vec2        ``frozen``           pooled encoder output (D,)        the Linear layer
wav2vec2        ``finetune``         conv feature extractor (T, 512)   encoder + Linear
whisper         ``train``            pooled layers (L+1, 2D)          mix + Linear/sklearn
==============  ===================  ===============================  =====================

The trainer (:mod:`serhpo.trainer`) asks :meth:`SERModel.stage_for_epoch` which
stage an epoch runs, calls :meth:`SERModel.set_stage`, fetches
``model.frozen_feature(stage)`` from the cache for every utterance, and calls
``model(features, lengths, stage=stage)``.

Example:
    >>> model = build_model("logmel", num_classes=7, params={"arch": "cnn"})  # doctest: +SKIP
    >>> stage = model.stage_for_epoch(1, unfreeze=0)  # doctest: +SKIP
    >>> feature = model.frozen_feature(stage)  # the cache computes it once  # doctest: +SKIP
    >>> item = feature.compute(waveform, valid_samples=len(waveform))  # doctest: +SKIP
    >>> logits = model(item.values[None], torch.tensor([item.valid_frames]),
    ...                stage=stage)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from serhpo.data import FeatureItem
from serhpo.errors import UserError

#: The stage name of single-stage families (everything trainable from the first epoch).
TRAIN_STAGE = "train"


class FrozenFeature(ABC):
    """A frozen computation from a waveform to a :class:`FeatureItem`, cached per utterance.

    Subclasses set :attr:`name` and implement :meth:`fingerprint` and :meth:`compute`.
    Heavy resources (a pretrained network) should be loaded lazily on the first
    :meth:`compute`, so that a fully cached run never loads them.

    Attributes:
        name: a short folder-safe name for the cache path, e.g. ``logmel``,
            ``egemaps``, ``wav2vec2-pooled``, ``wav2vec2-cnn``.
        sequence: whether :meth:`compute` returns a frame sequence (else a vector).
        normalisable: whether the ``normalise`` training key may standardise it.
    """

    name: ClassVar[str] = "feature"
    #: True for frame sequences ``(frames, ...)``, False for utterance-level vectors; tells
    #: :mod:`serhpo.normalisation` whether statistics run over frames or over utterances.
    sequence: ClassVar[bool] = False
    #: False when standardising the feature would change what a pretrained network expects
    #: (e.g. Whisper's log-Mel input): the trainer refuses ``normalise`` for it.
    normalisable: ClassVar[bool] = True

    @abstractmethod
    def fingerprint(self) -> str:
        """Identify everything that determines the output besides the audio itself.

        Include the parameters (sample rate, n_mels, hop, ...), the version of the
        library that computes it, and for a pretrained network its checksum. Cached
        entries with another fingerprint are never read. Use :func:`fingerprint_of`.
        """

    @abstractmethod
    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        """Compute the feature of one preprocessed utterance.

        Args:
            waveform: mono float32 samples at 16 kHz, shape ``(num_samples,)``, already
                truncated and (if padding is on) zero-padded to ``maxlen``.
            valid_samples: how many leading samples are real audio (the rest is padding).

        Returns:
            The feature, on the CPU, detached.
        """

    def compute_batch(
        self, waveforms: Sequence[torch.Tensor], *, valid_samples: Sequence[int]
    ) -> list[FeatureItem]:
        """Compute several utterances at once; override where batching is faster.

        The default calls :meth:`compute` for each one.
        """
        return [
            self.compute(waveform, valid_samples=valid)
            for waveform, valid in zip(waveforms, valid_samples, strict=True)
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, fingerprint={self.fingerprint()!r})"


class WaveformFeature(FrozenFeature):
    """The identity: the preprocessed waveform itself, ``(num_samples,)`` float32.

    For stages whose trainable part starts at the waveform (e.g. wav2vec2 with its conv
    feature extractor fine-tuned too). Caching it saves decoding and preprocessing only.
    """

    name: ClassVar[str] = "waveform"
    sequence: ClassVar[bool] = True

    def fingerprint(self) -> str:
        return fingerprint_of(kind="waveform", version=1)

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        return FeatureItem(values=waveform.detach().clone(), valid_frames=valid_samples)


@contextlib.contextmanager
def random_state_kept() -> Iterator[None]:
    """Run a block without moving Python's, numpy's or torch's global random streams.

    Loading a pretrained network builds its modules (random initialisation) before it
    reads the weights. Models load such resources once per process, lazily; inside a
    trial that would shift the seeded stream (dropout, later initialisations) of the first
    trial in each process only, so that a trial's result would depend on what ran before
    it. Loaders wrapped in this block leave the stream where the seed put it.

    Example:
        >>> _ = torch.manual_seed(0); expected = torch.rand(1); _ = torch.manual_seed(0)
        >>> with random_state_kept():
        ...     _ = torch.nn.Linear(4, 4)  # initialisation draws random numbers
        >>> bool(torch.rand(1) == expected)
        True
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def fingerprint_of(**parts: Any) -> str:
    """A short stable hash of JSON-serialisable keyword values (sorted by key).

    Example:
        >>> fingerprint_of(n_mels=64, hop=160) == fingerprint_of(hop=160, n_mels=64)
        True
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SERModel(nn.Module, ABC):
    """The trainable part of a speech emotion recognition model.

    Subclasses set :attr:`family` and :attr:`stages`, implement
    :meth:`frozen_feature`, :meth:`trainable_parameters` and :meth:`forward`, and may
    override :meth:`adapt` (statistics from the training features) and
    :meth:`stage_for_epoch`.

    Attributes:
        family: the registry name (``logmel``, ``egemaps``, ``wav2vec2``).
        stages: the training stages in the order they run; a single-stage family has
            ``(TRAIN_STAGE,)``.
        num_classes: size of the output layer.
        params: the family parameters the model was built with (arch, sizes, ...),
            JSON-serialisable, so that :func:`serhpo.models.build_model` rebuilds it.
    """

    family: ClassVar[str] = ""
    stages: ClassVar[tuple[str, ...]] = (TRAIN_STAGE,)

    def __init__(self, *, num_classes: int, params: dict[str, Any]) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.params = dict(params)
        self.stage = self.stages[0]

    def stage_for_epoch(self, epoch: int, *, unfreeze: int) -> str:
        """The stage that epoch ``epoch`` (starting at 1) runs.

        ``unfreeze`` is the number of epochs in the first stage before the second one
        starts: with two stages, epochs ``1..unfreeze`` run ``stages[0]`` (encoder
        frozen) and later epochs ``stages[1]`` (fine-tuned); ``unfreeze=0`` fine-tunes
        from the first epoch. Single-stage families ignore ``unfreeze``.

        Example:
            >>> [model.stage_for_epoch(e, unfreeze=2) for e in (1, 2, 3)]  # doctest: +SKIP
            ['frozen', 'frozen', 'finetune']
        """
        if len(self.stages) == 1:
            return self.stages[0]
        return self.stages[0] if epoch <= unfreeze else self.stages[1]

    @abstractmethod
    def frozen_feature(self, stage: str) -> FrozenFeature:
        """The frozen computation whose cached output ``stage`` consumes."""

    @abstractmethod
    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        """The parameters that ``stage`` updates (the others keep ``requires_grad=False``)."""

    def adapt(self, stage: str, train_items: Sequence[FeatureItem]) -> None:  # noqa: B027
        """Fit statistics (e.g. feature standardisation) on the training features.

        Called once per trial for each stage, with the training part's features of
        that stage, before the stage's first epoch. The default does nothing.
        """

    def fit_closed_form(
        self, stage: str, train_items: Sequence[FeatureItem], targets: torch.Tensor
    ) -> bool:
        """Fit the trainable part at once (e.g. a scikit-learn head); False: train by gradient.

        Called by the trainer after :meth:`adapt`, with the training features and their
        class indices. A family that returns True is scored once and runs no epochs. The
        default returns False.
        """
        return False

    def set_stage(self, stage: str) -> None:
        """Switch to ``stage``: only its trainable parameters keep ``requires_grad``.

        Raises:
            ValueError: when ``stage`` is not one of :attr:`stages`.
        """
        if stage not in self.stages:
            raise ValueError(f"{self.family} has stages {self.stages}; got {stage!r}")
        trainable = {id(p) for p in self.trainable_parameters(stage)}
        for parameter in self.parameters():
            parameter.requires_grad_(id(parameter) in trainable)
        self.stage = stage

    @abstractmethod
    def forward(self, features: torch.Tensor, lengths: torch.Tensor, *, stage: str) -> torch.Tensor:
        """Map a batch of cached features to logits.

        Args:
            features: the :class:`FeatureItem` values of a batch, zero-padded along the
                first (frame) axis to the longest one: ``(batch, frames, ...)`` or
                ``(batch, dim)`` for vectors; float32.
            lengths: valid frames per utterance, int64 ``(batch,)``; positions at or
                beyond it are padding and must not change the output (mask them).
            stage: the current stage (equal to :attr:`stage`).

        Returns:
            Logits ``(batch, num_classes)``.
        """


def masked_mean(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the frame axis (1) of ``(batch, frames, dim)``, ignoring padded frames.

    Example:
        >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
        >>> masked_mean(x, torch.tensor([2]))
        tensor([[2.]])
    """
    mask = frame_mask(lengths, frames.shape[1]).to(frames.dtype).unsqueeze(-1)
    total = (frames * mask).sum(dim=1)
    return total / mask.sum(dim=1).clamp_min(1.0)


def frame_mask(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """A boolean ``(batch, num_frames)`` mask, True where a frame is real audio.

    Example:
        >>> frame_mask(torch.tensor([1, 3]), 3)
        tensor([[ True, False, False],
                [ True,  True,  True]])
    """
    positions = torch.arange(num_frames, device=lengths.device)
    return positions.unsqueeze(0) < lengths.clamp_min(1).unsqueeze(1)


def check_params(family: str, params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Merge ``params`` over a family's ``defaults``; reject keys the family does not know.

    Raises:
        UserError: naming the unknown keys and the ones the family accepts.

    Example:
        >>> check_params("mlp-demo", {"dropout": 0.1}, {"dropout": 0.0, "size": 8})
        {'dropout': 0.1, 'size': 8}
    """
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise UserError(
            f"model family {family!r} got unknown parameter(s) {unknown}; it accepts "
            f"{sorted(defaults)} (plus the training keys of serhpo.training.TrainingConfig). "
            "Fix the key in config.yaml (model: / search_space:)."
        )
    return {**defaults, **params}
