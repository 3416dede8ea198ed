from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serhpo.audio import AudioChecks, AudioRejected, prepare_waveform, rms_dbfs, to_mono, write_wav


def tone(seconds: float, rate: int, *, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_48k_becomes_mono_16k(tmp_path: Path) -> None:
    left, right = tone(1.0, 48000), tone(1.0, 48000, freq=330.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 48000)
    audio = prepare_waveform(path)
    assert audio.samples.ndim == 1
    assert audio.sample_rate == 16000
    assert audio.original_sample_rate == 48000 and audio.original_channels == 2
    assert len(audio.samples) == 16000


def test_96k_is_resampled_without_aliasing(tmp_path: Path) -> None:
    # A 30 kHz tone is above the 8 kHz Nyquist limit of 16 kHz: a good resampler removes it.
    path = tmp_path / "hi.wav"
    sf.write(path, tone(1.0, 96000, freq=1000.0) + tone(1.0, 96000, freq=30000.0), 96000)
    audio = prepare_waveform(path)
    spectrum = np.abs(np.fft.rfft(audio.samples))
    freqs = np.fft.rfftfreq(len(audio.samples), 1 / 16000)
    alias = spectrum[(freqs > 1500)].max()
    assert spectrum[np.argmin(np.abs(freqs - 1000))] > 100 * alias


def test_downmix_averages_channels() -> None:
    stereo = np.array([[1.0, -1.0], [0.5, 0.25]], dtype=np.float32)
    assert to_mono(stereo).tolist() == [0.0, 0.375]


def test_aiff_named_wav_decodes(tmp_path: Path) -> None:
    path = tmp_path / "really_aiff.wav"
    sf.write(path, tone(1.0, 22050), 22050, format="AIFF")
    audio = prepare_waveform(path)
    assert audio.original_sample_rate == 22050
    assert abs(audio.duration_s - 1.0) < 1e-3


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "unreadable"),
        (lambda p: p.write_text("this is not audio at all\n" * 20), "unreadable"),
        (lambda p: sf.write(p, np.zeros(16000, dtype=np.float32), 16000), "silent"),
        (lambda p: sf.write(p, tone(0.1, 16000), 16000), "too short"),
        (lambda p: sf.write(p, tone(1.0, 16000, amp=1e-4), 16000), "silent"),
    ],
    ids=["empty", "truncated-header", "not-audio", "digital-silence", "too-short", "near-silent"],
)
def test_bad_files_are_rejected_with_a_reason(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioRejected) as caught:
        prepare_waveform(path, checks=AudioChecks(min_duration_s=0.5, silence_dbfs=-60))
    assert caught.value.reason.startswith(reason)


def test_truncated_data_chunk_keeps_what_is_there(tmp_path: Path) -> None:
    # A file cut in the middle of its samples (an interrupted copy) still holds usable audio.
    path = tmp_path / "cut.wav"
    sf.write(path, tone(2.0, 16000), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    audio = prepare_waveform(path)
    assert 0.9 < audio.duration_s < 1.1


def test_written_wav_is_16_bit_and_clipped(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    sf.write(path, np.full(48000, 0.999, dtype=np.float32), 48000)
    audio = prepare_waveform(path)
    out = tmp_path / "out.wav"
    write_wav(out, audio)
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert np.abs(sf.read(out)[0]).max() <= 1.0


def test_rms_dbfs_of_full_scale_sine_is_minus_3() -> None:
    assert rms_dbfs(tone(1.0, 16000, amp=1.0)) == pytest.approx(-3.01, abs=0.05)
