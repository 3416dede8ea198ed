"""Audio loading, downmixing, resampling, level normalisation and the checks that decide
whether a file is usable.

Every stage that reads audio (corpus preparation, prediction) goes through
:func:`prepare_waveform`, so a recording is treated the same wherever it enters.

The silence check judges the active speech, not the whole file: a recording is silent when
the 95th percentile of its 20-ms frame levels (:func:`active_level_dbfs`) is below
``audio.silence_dbfs``. Quiet but real speech (a corpus recorded 20 dB below another) keeps
loud frames well above a noise floor, while digital silence and a faint hiss have none.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from serhpo.schema import schema_default

#: soxr's "very high quality" preset: linear phase, passband to 95 % of Nyquist.
RESAMPLE_QUALITY = "VHQ"

#: The silence check's frames (seconds) and the percentile of their levels it compares.
ACTIVE_FRAME_S = 0.02
ACTIVE_PERCENTILE = 95.0

#: A downmix this many dB below the loudest channel means the channels cancel (:func:`downmix`).
CANCEL_DB = 20.0

log = logging.getLogger(__name__)


def _config_default(key: str) -> Any:
    """A dataclass field whose default is the schema's for config ``key`` (read when built)."""
    return field(default_factory=partial(schema_default, key))


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

    A threshold not given is the schema's default of its config key (``audio.*``), as in a
    model folder that records only the checks its config named.

    Attributes:
        min_duration_s: shortest usable duration, after resampling.
        silence_dbfs: a file whose active-speech level (:func:`active_level_dbfs`, dB
            relative to full scale) is below this is silent.
        min_sample_rate: a file recorded at a lower rate (Hz) holds no usable speech band
            (a 100-Hz header is a broken file, not a recording) and is rejected.
    """

    min_duration_s: float = _config_default("audio.min_duration_s")
    silence_dbfs: float = _config_default("audio.silence_dbfs")
    min_sample_rate: int = _config_default("audio.min_sample_rate")


@dataclass(frozen=True)
class Loudness:
    """Level normalisation of prepared recordings (config ``audio.loudness``).

    Each recording's integrated loudness (ITU-R BS.1770-4, gated, via ``pyloudnorm``) is
    brought to ``target_lufs``; when that gain would push a sample peak above
    ``peak_dbfs``, the gain is lowered so that the peak sits at ``peak_dbfs`` instead
    (a peak limit: no clipping), and the file is counted as limited.

    A field not given is the schema's default of its config key (``audio.loudness.*``).

    Attributes:
        enabled: off by default (the paper keeps each corpus' own level).
        target_lufs: the loudness every recording is brought to.
        peak_dbfs: the highest sample peak allowed after the gain.

    Example:
        >>> Loudness(enabled=True, target_lufs=-23.0).target_lufs
        -23.0
    """

    enabled: bool = _config_default("audio.loudness.enabled")
    target_lufs: float = _config_default("audio.loudness.target_lufs")
    peak_dbfs: float = _config_default("audio.loudness.peak_dbfs")


@dataclass(frozen=True)
class PreparedAudio:
    """A mono waveform at the target rate and what it was before.

    Attributes:
        samples: mono float32 samples in [-1, 1].
        sample_rate: the target rate.
        original_sample_rate: the file's own rate.
        original_channels: the file's channel count.
        gain_db: the level normalisation's gain (0 when it is off).
        peak_limited: the gain was lowered to keep the peak at ``Loudness.peak_dbfs``.
        notes: what was found and done about a file that is kept but not as it should be,
            each starting with a category (``truncated:``, ``clipped:``,
            ``channels cancel:``); counted in the corpus summary.
    """

    samples: np.ndarray
    sample_rate: int
    original_sample_rate: int
    original_channels: int
    gain_db: float = 0.0
    peak_limited: bool = False
    notes: tuple[str, ...] = ()

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
    try:
        size = path.stat().st_size
    except OSError as error:
        if path.is_symlink():
            raise AudioRejected(
                f"broken link: {path} points to {os.readlink(path)}, which does not exist"
            ) from None
        raise AudioRejected(f"unreadable: {error}") from None
    if size == 0:
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


def downmix(samples: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Average the channels into one, unless that average cancels the speech.

    A recording whose channels are (nearly) each other's negative, a wiring fault of
    microphones or of a stereo conversion, averages to near silence: when the mean's RMS
    is more than :data:`CANCEL_DB` below the loudest channel's, that channel is kept alone.

    Returns:
        ``(mono, note)``: the note says which channel was kept, or None.

    Example:
        >>> tone = np.sin(np.arange(800) / 5).astype(np.float32)
        >>> mono, note = downmix(np.stack([tone, -tone], axis=1))
        >>> bool(np.allclose(mono, tone)), note.split(":")[0]
        (True, 'channels cancel')
    """
    mono = to_mono(samples)
    if samples.ndim != 2 or samples.shape[1] < 2:
        return mono, None
    channel_levels = [rms_dbfs(samples[:, channel]) for channel in range(samples.shape[1])]
    loudest = int(np.argmax(channel_levels))
    mixed = rms_dbfs(mono)
    if math.isinf(channel_levels[loudest]) or mixed >= channel_levels[loudest] - CANCEL_DB:
        return mono, None
    below = "silent" if math.isinf(mixed) else f"{channel_levels[loudest] - mixed:.0f} dB below"
    note = (
        f"channels cancel: the mean of the {samples.shape[1]} channels is {below} channel "
        f"{loudest + 1}'s level (one is the negative of another); kept channel {loudest + 1} "
        "alone"
    )
    return np.ascontiguousarray(samples[:, loudest], dtype=np.float32), note


def wav_declared_frames(path: Path) -> int | None:
    """The frame count a WAV file's header declares (data chunk size / block align).

    libsndfile trims its own count to the bytes present, so a file cut mid-data is seen
    only by comparing this with the frames decoded. None for other containers, for RF64,
    and for a streaming header that leaves the size open (0 or 0xFFFFFFFF).

    Example:
        >>> wav_declared_frames(Path("03a01Fa.wav"))  # doctest: +SKIP
        31872
    """
    with open(path, "rb") as stream:
        head = stream.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while True:
            chunk = stream.read(8)
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"data":
                if not block_align or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            if name == b"fmt ":
                body = stream.read(size)
                if len(body) < 14:
                    return None
                block_align = int.from_bytes(body[12:14], "little")
                stream.seek(size % 2, os.SEEK_CUR)
            else:
                stream.seek(size + size % 2, os.SEEK_CUR)


def decoding_notes(path: Path, samples: np.ndarray) -> list[str]:
    """What is wrong with a decoded file that is still kept: cut mid-data, clipped.

    Example:
        >>> decoding_notes(Path("loud.wav"), np.array([[1.5]], dtype=np.float32))  # doctest: +SKIP
        ['clipped: float samples peak at 1.50, above full scale (1.0); stored clipped at 1.0']
    """
    notes = []
    declared = wav_declared_frames(path)
    if declared is not None and samples.shape[0] < declared:
        notes.append(
            f"truncated: the header declares {declared} frames, the file holds "
            f"{samples.shape[0]} ({100 * samples.shape[0] / declared:.0f}%); kept what is there"
        )
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        notes.append(
            f"clipped: float samples peak at {peak:.2f}, above full scale (1.0); stored "
            "clipped at 1.0"
        )
    return notes


def resample(samples: np.ndarray, *, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a mono signal with soxr's very-high-quality filter; no-op when the rates match."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, from_rate, to_rate, quality=RESAMPLE_QUALITY).astype(np.float32)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale; ``-inf`` for digital silence."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def active_level_dbfs(
    samples: np.ndarray,
    *,
    sample_rate: int,
    frame_s: float = ACTIVE_FRAME_S,
    percentile: float = ACTIVE_PERCENTILE,
) -> float:
    """The level of the active speech: a high percentile of the frames' RMS levels, in dBFS.

    The signal is cut into non-overlapping ``frame_s`` frames (a shorter signal is one
    frame); the ``percentile`` of their mean squares is returned in dB relative to full
    scale, ``-inf`` for digital silence. Pauses and leading silence do not pull it down,
    as they do a whole-file RMS.

    Example:
        >>> speech = np.concatenate([np.zeros(16000), np.full(4000, 0.1)]).astype(np.float32)
        >>> round(active_level_dbfs(speech, sample_rate=16000), 1), round(rms_dbfs(speech), 1)
        (-20.0, -27.0)
    """
    frame = max(1, round(frame_s * sample_rate))
    count = max(1, len(samples) // frame)
    squares = np.square(
        samples[: count * frame] if len(samples) >= frame else samples, dtype=np.float64
    )
    energy = squares.reshape(count, -1).mean(axis=1)
    level = float(np.percentile(energy, percentile))
    return 10.0 * math.log10(level) if level > 0 else -math.inf


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
    level = active_level_dbfs(samples, sample_rate=sample_rate)
    if level < checks.silence_dbfs:
        raise AudioRejected(
            f"silent: active level {level:.1f} dBFS (the {ACTIVE_PERCENTILE:g}th percentile "
            f"of {ACTIVE_FRAME_S * 1000:g}-ms frame levels; whole-file RMS "
            f"{rms_dbfs(samples):.1f} dBFS), below audio.silence_dbfs = {checks.silence_dbfs} dBFS"
        )


def normalise_loudness(
    samples: np.ndarray, *, sample_rate: int, loudness: Loudness
) -> tuple[np.ndarray, float, bool]:
    """Bring a mono waveform to ``loudness.target_lufs`` under the peak limit.

    Returns:
        ``(samples, gain_db, peak_limited)``; the input unchanged with gain 0 when the
        loudness cannot be measured (shorter than BS.1770's 0.4-s block, or entirely
        below its -70 LUFS gate).

    Example:
        >>> tone = (0.01 * np.sin(np.arange(16000) / 5)).astype(np.float32)
        >>> out, gain, limited = normalise_loudness(
        ...     tone, sample_rate=16000, loudness=Loudness(enabled=True, target_lufs=-23))
        >>> round(gain, 1) > 0, limited
        (True, False)
    """
    import pyloudnorm  # only preparation with audio.loudness.enabled needs it

    if len(samples) < round(0.4 * sample_rate):
        return samples, 0.0, False
    measured = pyloudnorm.Meter(sample_rate).integrated_loudness(samples.astype(np.float64))
    if not math.isfinite(measured):
        return samples, 0.0, False
    gain_db = loudness.target_lufs - measured
    peak = float(np.max(np.abs(samples)))
    limited = False
    if peak > 0:
        headroom_db = loudness.peak_dbfs - 20.0 * math.log10(peak)
        if gain_db > headroom_db:
            gain_db, limited = headroom_db, True
    scaled = (samples * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
    return scaled, float(gain_db), limited


def prepare_waveform(
    path: Path,
    *,
    sample_rate: int = 16000,
    checks: AudioChecks | None = None,
    loudness: Loudness | None = None,
) -> PreparedAudio:
    """Decode a file, downmix it to mono, resample it, check it, and normalise its level.

    The checks judge the recording as it was; the level normalisation (when
    ``loudness.enabled``) follows them. A file below ``checks.min_sample_rate`` is
    rejected; one cut mid-data, clipped, or whose channels cancel is kept with a note
    (:attr:`PreparedAudio.notes`).

    Args:
        path: any audio file libsndfile can decode.
        sample_rate: the target rate.
        checks: rejection thresholds; the defaults of :class:`AudioChecks` when ``None``.
        loudness: level normalisation; none when ``None`` or not enabled.

    Raises:
        AudioRejected: with the reason the file cannot be used.

    Example:
        >>> audio = prepare_waveform(Path("03a01Fa.wav"))  # doctest: +SKIP
        >>> audio.sample_rate, audio.samples.ndim  # doctest: +SKIP
        (16000, 1)
    """
    checks = checks or AudioChecks()
    samples, original_rate = read_audio(path)
    if original_rate < checks.min_sample_rate:
        raise AudioRejected(
            f"sample rate: {original_rate} Hz, below audio.min_sample_rate = "
            f"{checks.min_sample_rate} Hz (no speech band to resample; a broken header?)"
        )
    notes = decoding_notes(path, samples)
    mixed, note = downmix(samples)
    notes += [note] if note else []
    mono = resample(mixed, from_rate=original_rate, to_rate=sample_rate)
    check_waveform(mono, sample_rate=sample_rate, checks=checks)
    gain_db, limited = 0.0, False
    if loudness is not None and loudness.enabled:
        mono, gain_db, limited = normalise_loudness(
            mono, sample_rate=sample_rate, loudness=loudness
        )
    # A high-quality resampler may overshoot full scale by a little; clip before 16-bit storage.
    np.clip(mono, -1.0, 1.0, out=mono)
    return PreparedAudio(
        samples=mono,
        sample_rate=sample_rate,
        original_sample_rate=original_rate,
        original_channels=samples.shape[1],
        gain_db=gain_db,
        peak_limited=limited,
        notes=tuple(notes),
    )


def write_wav(path: Path, audio: PreparedAudio) -> None:
    """Write mono 16-bit PCM WAV atomically (a temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    sf.write(partial, audio.samples, audio.sample_rate, subtype="PCM_16", format="WAV")
    partial.replace(path)
