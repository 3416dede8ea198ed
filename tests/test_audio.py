from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serhpo.audio import (
    AudioChecks,
    AudioRejected,
    Loudness,
    active_level_dbfs,
    downmix,
    prepare_waveform,
    rms_dbfs,
    to_mono,
    wav_declared_frames,
    write_wav,
)


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
    # ... and says so: the header's frame count against the frames decoded.
    assert wav_declared_frames(path) == 32000
    (note,) = audio.notes
    assert note.startswith("truncated: the header declares 32000 frames, the file holds 159")


def test_a_complete_or_streamed_wav_has_no_truncation_note(tmp_path: Path) -> None:
    path = tmp_path / "whole.wav"
    sf.write(path, tone(1.0, 16000), 16000, subtype="PCM_16")
    assert prepare_waveform(path).notes == ()
    streamed = bytearray(path.read_bytes())
    streamed[40:44] = b"\xff\xff\xff\xff"  # the data size left open, as a stream writes it
    path.write_bytes(bytes(streamed))
    assert wav_declared_frames(path) is None


def test_clipping_in_float_input_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "hot.wav"
    sf.write(path, tone(1.0, 16000, amp=1.8), 16000, subtype="FLOAT")
    audio = prepare_waveform(path)
    (note,) = audio.notes
    assert note.startswith("clipped: float samples peak at 1.80, above full scale")
    assert np.abs(audio.samples).max() <= 1.0


def test_channels_that_cancel_keep_one_channel_instead_of_silence(tmp_path: Path) -> None:
    speech = tone(1.0, 16000)
    path = tmp_path / "inverted.wav"
    sf.write(path, np.stack([speech, -speech], axis=1), 16000, subtype="FLOAT")
    audio = prepare_waveform(path)  # the plain average would be rejected as silent
    assert np.allclose(audio.samples, speech, atol=1e-6)
    (note,) = audio.notes
    assert note.startswith("channels cancel:") and "kept channel 1" in note
    ordinary = np.stack([speech, tone(1.0, 16000, freq=330.0)], axis=1)
    assert downmix(ordinary)[1] is None


def test_an_absurd_sample_rate_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "slow.wav"
    sf.write(path, tone(10.0, 100, freq=10.0), 100)
    with pytest.raises(AudioRejected, match=r"^sample rate: 100 Hz, below audio.min_sample_rate"):
        prepare_waveform(path)
    assert prepare_waveform(path, checks=AudioChecks(min_sample_rate=50)).sample_rate == 16000


def test_a_broken_link_is_rejected_with_where_it_points(tmp_path: Path) -> None:
    path = tmp_path / "link.wav"
    path.symlink_to(tmp_path / "gone.wav")
    with pytest.raises(AudioRejected, match=r"^broken link: .*link.wav points to .*gone.wav"):
        prepare_waveform(path)


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


def test_quiet_real_speech_is_kept_while_silence_and_a_faint_noise_floor_are_rejected(
    shared_corpora: Path, tmp_path: Path
) -> None:
    # A real RAVDESS utterance 25 dB down (a corpus recorded far quieter than EmoDB): its
    # whole-file RMS falls far below -60 dBFS (the old check's threshold), its active speech
    # stays above the default -70 dBFS.
    original, rate = sf.read(
        sorted((shared_corpora / "ravdess-sample" / "Actor_01").glob("*.wav"))[0],
        dtype="float32",
    )
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, original * 10 ** (-25 / 20), rate, subtype="FLOAT")
    checks = AudioChecks()
    audio = prepare_waveform(quiet, checks=checks)
    assert rms_dbfs(audio.samples) < -70  # a whole-file RMS check would have rejected it
    assert active_level_dbfs(audio.samples, sample_rate=16000) > -70

    noise = tmp_path / "noise.wav"
    hiss = 10 ** (-75 / 20) * np.random.default_rng(0).standard_normal(3 * 16000)
    sf.write(noise, hiss.astype(np.float32), 16000, subtype="FLOAT")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(3 * 16000, dtype=np.float32), 16000)
    for path in (noise, silent):
        with pytest.raises(AudioRejected) as caught:
            prepare_waveform(path, checks=checks)
        assert caught.value.reason.startswith("silent: active level")


def test_active_level_ignores_pauses_that_pull_the_whole_file_rms_down() -> None:
    burst = tone(0.5, 16000, amp=0.1)
    speech = np.concatenate([np.zeros(32000, dtype=np.float32), burst, np.zeros(32000)])
    assert active_level_dbfs(speech, sample_rate=16000) == pytest.approx(-23.0, abs=0.2)
    assert rms_dbfs(speech) < -31


def test_loudness_normalisation_reaches_the_target_and_never_clips(tmp_path: Path) -> None:
    pyloudnorm = pytest.importorskip("pyloudnorm")
    rng = np.random.default_rng(1)
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, (0.01 * rng.standard_normal(32000)).astype(np.float32), 16000)
    loudness = Loudness(enabled=True, target_lufs=-23.0, peak_dbfs=-1.0)
    audio = prepare_waveform(quiet, loudness=loudness)
    meter = pyloudnorm.Meter(16000)
    assert meter.integrated_loudness(audio.samples.astype(np.float64)) == pytest.approx(
        -23.0, abs=0.1
    )
    assert audio.gain_db > 10 and not audio.peak_limited
    # A spiky file: one click at 0.5 of full scale in near-silence. Reaching -23 LUFS would
    # push the click far past full scale; the gain stops at the -1 dBFS peak limit instead.
    spiky = tmp_path / "spiky.wav"
    wave = (1e-3 * rng.standard_normal(32000)).astype(np.float32)
    wave[16000] = 0.5
    sf.write(spiky, wave, 16000, subtype="FLOAT")
    audio = prepare_waveform(spiky, loudness=loudness)
    assert audio.peak_limited
    assert np.abs(audio.samples).max() == pytest.approx(10 ** (-1 / 20), rel=1e-3)
    assert prepare_waveform(spiky).gain_db == 0.0  # off by default
