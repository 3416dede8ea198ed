"""Audio loading, downmixing, resampling and the checks that decide whether a file is usable.

Every stage that reads audio (corpus preparation, prediction) goes through
:func:`prepare_waveform`, so a recording is treated the same wherever it enters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

#: soxr's "very high quality" preset: linear phase, passband to 95 % of Nyquist.
RESAMPLE_QUALITY = "VHQ"


class AudioRejected(Exception):
    """A file that cannot be used.

    ``reason`` starts with a short category: ``empty:``, ``unreadable:``, ``silent:`` ...
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AudioChecks:
    """Thresholds below which a recording is rejected.

    Attributes:
        min_duration_s: shortest usable duration, after resampling.
        silence_dbfs: a file whose RMS level is below this (dB relative to full scale) is silent.
    """

    min_duration_s: float = 0.5
    silence_dbfs: float = -60.0


@dataclass(frozen=True)
class PreparedAudio:
    """A mono waveform at the target rate and what it was before.

    Attributes:
        samples: mono float32 samples in [-1, 1].
        sample_rate: the target rate.
        original_sample_rate: the file's own rate.
        original_channels: the file's channel count.
    """

    samples: np.ndarray
    sample_rate: int
    original_sample_rate: int
    original_channels: int

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return len(self.samples) / self.sample_rate


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file of any format libsndfile reads (WAV, AIFF, FLAC, ...), whatever its extension.

    Returns:
        ``(samples, sample_rate)`` with samples float32 of shape ``(frames, channels)``.

    Raises:
        AudioRejected: the file is empty or cannot be decoded.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioRejected("empty: the file has 0 bytes")
    try:
        # soundfile detects the container from the header, not the name, so an AIFF
        # file named .wav decodes correctly.
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioRejected(f"unreadable: {error}") from None
    if samples.shape[0] == 0:
        raise AudioRejected("empty: the file holds no samples")
    return samples, int(sample_rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(frames, channels)`` array into one channel.

    Example:
        >>> to_mono(np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32)).tolist()
        [0.5, 0.5]
    """
    return samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, *, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a mono signal with soxr's very-high-quality filter; no-op when the rates match."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, from_rate, to_rate, quality=RESAMPLE_QUALITY).astype(np.float32)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale; ``-inf`` for digital silence."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def check_waveform(samples: np.ndarray, *, sample_rate: int, checks: AudioChecks) -> None:
    """Raise :class:`AudioRejected` when a mono waveform is not usable for training or testing."""
    if not np.all(np.isfinite(samples)):
        raise AudioRejected("corrupt: the samples contain NaN or infinite values")
    duration = len(samples) / sample_rate
    if duration < checks.min_duration_s:
        raise AudioRejected(
            f"too short: {duration:.3f} s, shorter than "
            f"audio.min_duration_s = {checks.min_duration_s} s"
        )
    level = rms_dbfs(samples)
    if level < checks.silence_dbfs:
        raise AudioRejected(
            f"silent: RMS {level:.1f} dBFS, below audio.silence_dbfs = {checks.silence_dbfs} dBFS"
        )


def prepare_waveform(
    path: Path, *, sample_rate: int = 16000, checks: AudioChecks | None = None
) -> PreparedAudio:
    """Decode a file, downmix it to mono, resample it and check it.

    Args:
        path: any audio file libsndfile can decode.
        sample_rate: the target rate.
        checks: rejection thresholds; the defaults of :class:`AudioChecks` when ``None``.

    Raises:
        AudioRejected: with the reason the file cannot be used.

    Example:
        >>> audio = prepare_waveform(Path("03a01Fa.wav"))  # doctest: +SKIP
        >>> audio.sample_rate, audio.samples.ndim
        (16000, 1)
    """
    samples, original_rate = read_audio(path)
    mono = resample(to_mono(samples), from_rate=original_rate, to_rate=sample_rate)
    check_waveform(mono, sample_rate=sample_rate, checks=checks or AudioChecks())
    # A high-quality resampler may overshoot full scale by a little; clip before 16-bit storage.
    np.clip(mono, -1.0, 1.0, out=mono)
    return PreparedAudio(
        samples=mono,
        sample_rate=sample_rate,
        original_sample_rate=original_rate,
        original_channels=samples.shape[1],
    )


def write_wav(path: Path, audio: PreparedAudio) -> None:
    """Write mono 16-bit PCM WAV atomically (a temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    sf.write(partial, audio.samples, audio.sample_rate, subtype="PCM_16", format="WAV")
    partial.replace(path)
