"""Log-Mel spectrogram models: a frozen torchaudio front end and heads chosen by name.

The heads are the architectures of the log-Mel comparison (see paper-figures.md):
``cnn``, ``cnn_lstm``, ``cnn_lstm_attention``, ``cnn_gru``, ``resnet``, ``mlp`` and
``transformer``, each with its sizes as parameters so that an HPO study can search
the architecture as a categorical parameter.

Input log-Mel frames are standardised per Mel band with statistics of the training
part (:meth:`LogMelModel.adapt`); padded frames are set to zero after that, and the
heads pool over time with masks, so padding changes little.

Example:
    >>> model = build("logmel", num_classes=7, params={"arch": "cnn_gru", "embedding_size": 64})
    >>> item = model.frozen_feature("train").compute(torch.randn(32000), valid_samples=32000)
    >>> item.values.shape
    torch.Size([201, 64])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torchaudio
from torch import nn

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

SAMPLE_RATE = 16000

ARCHITECTURES = (
    "cnn",
    "cnn_lstm",
    "cnn_lstm_attention",
    "cnn_gru",
    "resnet",
    "mlp",
    "transformer",
)

#: Family parameters and their defaults.
DEFAULTS: dict[str, Any] = {
    "arch": "cnn",
    "n_mels": 64,  # front end (frozen, part of the cache key)
    "win_ms": 25.0,
    "hop_ms": 10.0,
    "embedding_size": 128,  # width of the pooled embedding / RNN / transformer
    "dropout": 0.3,
    "channels": 16,  # channels of the first conv block; doubled in each later block
    "conv_blocks": 3,
    "num_layers": 1,  # RNN / transformer / MLP hidden layers
    "num_heads": 4,  # transformer attention heads
}


class LogMelFeature(FrozenFeature):
    """Log-Mel spectrogram ``(frames, n_mels)`` from torchaudio, stored as float16.

    Frames are computed with a centred window every ``hop_ms``; the first
    ``valid_samples // hop + 1`` frames count as real audio.
    """

    name: ClassVar[str] = "logmel"
    sequence: ClassVar[bool] = True

    def __init__(self, *, n_mels: int = 64, win_ms: float = 25.0, hop_ms: float = 10.0) -> None:
        self.n_mels = n_mels
        self.win_length = round(SAMPLE_RATE * win_ms / 1000)
        self.hop_length = round(SAMPLE_RATE * hop_ms / 1000)
        self.n_fft = 2 ** math.ceil(math.log2(self.win_length))
        self._transform: torchaudio.transforms.MelSpectrogram | None = None

    def fingerprint(self) -> str:
        return fingerprint_of(
            kind="logmel",
            version=1,
            torchaudio=torchaudio.__version__.split("+")[0],
            sample_rate=SAMPLE_RATE,
            n_mels=self.n_mels,
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
        )

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        if self._transform is None:
            self._transform = torchaudio.transforms.MelSpectrogram(
                sample_rate=SAMPLE_RATE,
                n_fft=self.n_fft,
                win_length=self.win_length,
                hop_length=self.hop_length,
                n_mels=self.n_mels,
                power=2.0,
            )
        power = self._transform(waveform.float())  # (n_mels, frames)
        log_mel = torch.log(power + 1e-6).transpose(0, 1).contiguous()
        valid = min(log_mel.shape[0], valid_samples // self.hop_length + 1)
        return FeatureItem(values=log_mel.to(torch.float16), valid_frames=valid)


class LogMelModel(SERModel):
    """Band-standardised log-Mel frames into one of the :data:`ARCHITECTURES` heads."""

    family: ClassVar[str] = "logmel"
    stages: ClassVar[tuple[str, ...]] = (TRAIN_STAGE,)

    def __init__(self, *, num_classes: int, params: dict[str, Any]) -> None:
        params = check_params(self.family, params, DEFAULTS)
        if params["arch"] not in ARCHITECTURES:
            raise UserError(
                f"log-Mel arch {params['arch']!r} is unknown; expected one of "
                f"{list(ARCHITECTURES)}. Fix model.arch or the search space's arch choices."
            )
        super().__init__(num_classes=num_classes, params=params)
        self.feature = LogMelFeature(
            n_mels=params["n_mels"], win_ms=params["win_ms"], hop_ms=params["hop_ms"]
        )
        n_mels = params["n_mels"]
        self.register_buffer("band_mean", torch.zeros(n_mels))
        self.register_buffer("band_std", torch.ones(n_mels))
        self.head = _HEADS[params["arch"]](
            n_mels=n_mels,
            num_classes=num_classes,
            **{
                key: params[key]
                for key in (
                    "embedding_size",
                    "dropout",
                    "channels",
                    "conv_blocks",
                    "num_layers",
                    "num_heads",
                )
            },
        )

    def frozen_feature(self, stage: str) -> FrozenFeature:
        return self.feature

    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def adapt(self, stage: str, train_items: Sequence[FeatureItem]) -> None:
        """Per-band mean and standard deviation over the real frames of the training part."""
        frames = torch.cat([item.values[: item.valid_frames].float() for item in train_items])
        self.band_mean.copy_(frames.mean(dim=0))
        self.band_std.copy_(frames.std(dim=0).clamp_min(1e-3))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, *, stage: str) -> torch.Tensor:
        normalised = (features - self.band_mean) / self.band_std
        mask = frame_mask(lengths, features.shape[1]).unsqueeze(-1)
        normalised = normalised * mask  # padded frames: zero, the band mean
        return self.head(normalised, lengths)


def build(
    name: str, *, num_classes: int, params: dict[str, Any], backbone_dir: Path | None = None
) -> LogMelModel:
    """Build a log-Mel model (``backbone_dir`` is unused: nothing is pretrained).

    Example:
        >>> build("logmel", num_classes=4, params={"arch": "mlp"}).params["arch"]
        'mlp'
    """
    return LogMelModel(num_classes=num_classes, params=params)


# ---------------------------------------------------------------- heads
# Each head maps normalised frames (batch, frames, n_mels) and lengths to logits.


def _classifier(in_features: int, *, embedding_size: int, dropout: float, num_classes: int):
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_features, embedding_size),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(embedding_size, num_classes),
    )


def _masked_max(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    mask = frame_mask(lengths, frames.shape[1]).unsqueeze(-1)
    return frames.masked_fill(~mask, float("-inf")).amax(dim=1)


def _mask_time(maps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the padded time steps of ``(batch, channels, mels, time)`` maps.

    Done after every block, so that a padded utterance gives the same output as the
    utterance alone: convolutions see zeros beyond its end either way, and max pooling
    over non-negative (post-ReLU) values ignores them.
    """
    return maps * frame_mask(lengths, maps.shape[-1])[:, None, None, :].to(maps.dtype)


def _halve(lengths: torch.Tensor) -> torch.Tensor:
    return torch.div(lengths + 1, 2, rounding_mode="floor").clamp_min(1)


class _ConvFrontEnd(nn.Module):
    """Conv blocks (conv 3x3, batch norm, ReLU, 2x2 max pool) over (mel, time)."""

    def __init__(self, *, n_mels: int, channels: int, conv_blocks: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_channels = 1
        for block in range(conv_blocks):
            out_channels = channels * 2**block
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                    nn.BatchNorm2d(out_channels),
                    nn.ReLU(),
                )
            )
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.out_channels = in_channels
        self.out_mels = n_mels
        for _ in range(conv_blocks):
            self.out_mels = math.ceil(self.out_mels / 2)

    def forward(
        self, frames: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (batch, time', channels, mels') and the pooled lengths."""
        maps = frames.transpose(1, 2).unsqueeze(1)  # (B, 1, M, T)
        for block in self.blocks:
            maps = self.pool(_mask_time(block(maps), lengths))
            lengths = _halve(lengths)
        return maps.permute(0, 3, 1, 2), lengths


class _CNN(nn.Module):
    def __init__(
        self, *, n_mels, num_classes, embedding_size, dropout, channels, conv_blocks, **_: Any
    ) -> None:
        super().__init__()
        self.front = _ConvFrontEnd(n_mels=n_mels, channels=channels, conv_blocks=conv_blocks)
        self.classifier = _classifier(
            2 * self.front.out_channels * self.front.out_mels,
            embedding_size=embedding_size,
            dropout=dropout,
            num_classes=num_classes,
        )

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        maps, lengths = self.front(frames, lengths)
        sequence = maps.flatten(2)  # (B, T', C * M'): keeps where in frequency (pitch) it is
        pooled = torch.cat([masked_mean(sequence, lengths), _masked_max(sequence, lengths)], -1)
        return self.classifier(pooled)


class _CNNRecurrent(nn.Module):
    """Conv front end, then an LSTM or GRU over time, pooled by mean or attention."""

    def __init__(
        self,
        *,
        n_mels,
        num_classes,
        embedding_size,
        dropout,
        channels,
        conv_blocks,
        num_layers,
        cell: str,
        attention: bool,
        **_: Any,
    ) -> None:
        super().__init__()
        self.front = _ConvFrontEnd(n_mels=n_mels, channels=channels, conv_blocks=conv_blocks)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        hidden = max(1, embedding_size // 2)
        self.rnn = rnn(
            self.front.out_channels * self.front.out_mels,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.attention = (
            nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
            if attention
            else None
        )
        self.classifier = _classifier(
            2 * hidden, embedding_size=embedding_size, dropout=dropout, num_classes=num_classes
        )

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        maps, lengths = self.front(frames, lengths)
        sequence = maps.flatten(2)  # (B, T', C * M')
        packed = nn.utils.rnn.pack_padded_sequence(
            sequence, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, _ = self.rnn(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(
            outputs, batch_first=True, total_length=sequence.shape[1]
        )
        if self.attention is None:
            pooled = masked_mean(outputs, lengths)
        else:
            scores = self.attention(outputs).squeeze(-1)
            scores = scores.masked_fill(~frame_mask(lengths, outputs.shape[1]), float("-inf"))
            weights = torch.softmax(scores, dim=1).unsqueeze(-1)
            pooled = (weights * outputs).sum(dim=1)
        return self.classifier(pooled)


class _ResidualBlock(nn.Module):
    """Two 3x3 convolutions (the first with stride 2) plus a strided 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.first = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )
        self.second = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(
        self, maps: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = _halve(lengths)
        hidden = _mask_time(self.first(maps), lengths)
        return _mask_time(torch.relu(self.second(hidden) + self.shortcut(maps)), lengths), lengths


class _ResNet(nn.Module):
    def __init__(
        self, *, n_mels, num_classes, embedding_size, dropout, channels, conv_blocks, **_: Any
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        blocks, in_channels = [], channels
        for block in range(conv_blocks):
            out_channels = channels * 2 ** (block + 1)
            blocks.append(_ResidualBlock(in_channels, out_channels))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        out_mels = n_mels
        for _ in range(conv_blocks):
            out_mels = (out_mels + 1) // 2
        self.classifier = _classifier(
            2 * in_channels * out_mels,
            embedding_size=embedding_size,
            dropout=dropout,
            num_classes=num_classes,
        )

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        maps = _mask_time(self.stem(frames.transpose(1, 2).unsqueeze(1)), lengths)
        for block in self.blocks:
            maps, lengths = block(maps, lengths)
        sequence = maps.permute(0, 3, 1, 2).flatten(2)  # (B, T', C * M')
        pooled = torch.cat([masked_mean(sequence, lengths), _masked_max(sequence, lengths)], -1)
        return self.classifier(pooled)


class _MLP(nn.Module):
    """Utterance statistics (mean and standard deviation per band) into an MLP."""

    def __init__(
        self, *, n_mels, num_classes, embedding_size, dropout, num_layers, **_: Any
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 2 * n_mels
        for _ in range(max(1, num_layers)):
            layers += [nn.Linear(width, embedding_size), nn.ReLU(), nn.Dropout(dropout)]
            width = embedding_size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mean = masked_mean(frames, lengths)
        spread = masked_mean((frames - mean.unsqueeze(1)) ** 2, lengths).clamp_min(1e-6).sqrt()
        return self.layers(torch.cat([mean, spread], dim=-1))


class _Transformer(nn.Module):
    """Frames (time pooled 4x) projected to ``embedding_size``, sinusoidal positions,
    a transformer encoder with a padding mask, masked mean pooling."""

    def __init__(
        self, *, n_mels, num_classes, embedding_size, dropout, num_layers, num_heads, **_: Any
    ) -> None:
        super().__init__()
        if embedding_size % num_heads:
            raise UserError(
                f"transformer embedding_size {embedding_size} is not divisible by num_heads "
                f"{num_heads}; choose sizes where it is (e.g. 64 and 4)."
            )
        self.subsample = 4
        self.project = nn.Linear(n_mels, embedding_size)
        layer = nn.TransformerEncoderLayer(
            embedding_size,
            num_heads,
            dim_feedforward=2 * embedding_size,
            dropout=dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=num_layers, enable_nested_tensor=False
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_size, num_classes))
        self.embedding_size = embedding_size

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # average groups of `subsample` frames, counting real frames only
        mask = frame_mask(lengths, frames.shape[1]).to(frames.dtype).unsqueeze(1)  # (B, 1, T)
        sums = nn.functional.avg_pool1d(
            frames.transpose(1, 2) * mask, self.subsample, ceil_mode=True
        )
        counts = nn.functional.avg_pool1d(mask, self.subsample, ceil_mode=True)
        frames = (sums / counts.clamp_min(1e-6)).transpose(1, 2)
        lengths = torch.div(lengths + self.subsample - 1, self.subsample, rounding_mode="floor")
        hidden = self.project(frames) + _positions(frames.shape[1], self.embedding_size).to(
            frames.device
        )
        mask = frame_mask(lengths, hidden.shape[1])
        hidden = self.encoder(hidden, src_key_padding_mask=~mask)
        return self.classifier(masked_mean(hidden, lengths))


def _positions(length: int, size: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, size, 2, dtype=torch.float32) * (-math.log(10000.0) / size))
    table = torch.zeros(length, size)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: size // 2])
    return table


_HEADS: dict[str, Any] = {
    "cnn": _CNN,
    "cnn_lstm": lambda **kw: _CNNRecurrent(cell="lstm", attention=False, **kw),
    "cnn_lstm_attention": lambda **kw: _CNNRecurrent(cell="lstm", attention=True, **kw),
    "cnn_gru": lambda **kw: _CNNRecurrent(cell="gru", attention=False, **kw),
    "resnet": _ResNet,
    "mlp": _MLP,
    "transformer": _Transformer,
}
