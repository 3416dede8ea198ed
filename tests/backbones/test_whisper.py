"""The real embedded Whisper tiny.en: model.bin read without pickle; torch equals CTranslate2."""

from __future__ import annotations

import hashlib
import json
import math
import struct

import numpy as np
import pytest
import torch

from serhpo.backbones.whisper import (
    check_whisper_dir,
    default_whisper_dir,
    encoder_sizes,
    hidden_states,
    log_mel,
    model_checksum,
    read_model_file,
    shared_whisper_encoder,
)
from serhpo.errors import UserError

#: |torch - CTranslate2| on the last hidden state (values up to about 13): both run float32
#: arithmetic on the same float16 weights; only the order of operations differs. Measured:
#: 2e-5 on the EmoDB recording, 1.9e-4 on the generated tone.
TOLERANCE = 1e-3


def _voice(seconds: float = 1.5, f0: float = 150.0) -> torch.Tensor:
    """A deterministic harmonic tone with a slow vibrato: the same samples everywhere."""
    time = torch.arange(int(16000 * seconds)) / 16000
    phase = 2 * math.pi * f0 * time * (1 + 0.1 * torch.sin(2 * math.pi * 2 * time))
    return (0.2 * sum(torch.sin(k * phase) / k for k in range(1, 6))).float()


def _emodb_recording(shared_corpora) -> np.ndarray:
    import soundfile
    import soxr

    path = shared_corpora / "emodb-2s" / "wav" / "03a01Fa.wav"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in the shared EmoDB copy")
    samples, rate = soundfile.read(path, dtype="float32")
    return soxr.resample(samples, rate, 16000).astype(np.float32)


def _ctranslate2_encode(mel: np.ndarray) -> np.ndarray:
    import ctranslate2

    model = ctranslate2.models.Whisper(str(default_whisper_dir()), device="cpu", intra_threads=1)
    return np.array(model.encode(ctranslate2.StorageView.from_array(mel[None].astype(np.float32))))


def test_model_bin_is_parsed_and_sized_from_its_tensors():
    contents = read_model_file(default_whisper_dir() / "model.bin", prefix="encoder/")
    assert (contents.version, contents.spec, contents.revision) == (6, "WhisperSpec", 3)
    assert contents.variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert contents.variables["encoder/conv1/weight"].dtype == np.float16
    assert not any(name.startswith("decoder/") for name in contents.variables)
    assert encoder_sizes() == {
        "num_mel_bins": 80,
        "d_model": 384,
        "encoder_layers": 4,
        "num_heads": 6,
    }
    assert len(model_checksum(default_whisper_dir())) == 64


def test_the_checksum_is_remembered_per_path_size_and_time(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    store = tmp_path / "checksums.json"
    digest = model_checksum(folder, store=store)
    assert digest == hashlib.sha256(b"weights").hexdigest()
    assert list(json.loads(store.read_text()).values()) == [digest]
    (folder / "model.bin").write_bytes(b"other weights")  # new size: computed again
    assert model_checksum(folder, store=store) == hashlib.sha256(b"other weights").hexdigest()
    assert len(json.loads(store.read_text())) == 2


def test_torch_encoder_equals_ctranslate2_on_a_generated_signal():
    encoder = shared_whisper_encoder()
    for pad in (True, False):  # 30-s window (3000 frames), and the unpadded spectrogram
        mel = log_mel(_voice().numpy(), pad_to_30s=pad)
        with torch.no_grad():
            states = hidden_states(encoder, torch.from_numpy(mel)[None])
        assert len(states) == 5  # embedding output + 4 layers
        expected = _ctranslate2_encode(mel)
        assert states[-1].shape == expected.shape == (1, mel.shape[1] // 2, 384)
        assert np.abs(states[-1].numpy() - expected).max() < TOLERANCE
        assert np.abs(expected).max() > 1.0  # not a trivially small output


def test_torch_encoder_equals_ctranslate2_on_a_real_recording(shared_corpora):
    mel = log_mel(_emodb_recording(shared_corpora), pad_to_30s=True)
    with torch.no_grad():
        last = hidden_states(shared_whisper_encoder(), torch.from_numpy(mel)[None])[-1]
    assert np.abs(last.numpy() - _ctranslate2_encode(mel)).max() < TOLERANCE


def test_log_mel_pads_to_30_s_or_keeps_an_even_frame_count():
    assert log_mel(np.zeros(24000, np.float32)).shape == (80, 3000)
    assert log_mel(np.zeros(24100, np.float32), pad_to_30s=False).shape == (80, 150)
    assert log_mel(np.zeros(10, np.float32), pad_to_30s=False).shape == (80, 2)
    assert log_mel(np.zeros(16000 * 31, np.float32), pad_to_30s=False).shape == (80, 3000)


def test_folders_that_are_not_whisper_models_are_refused(tmp_path):
    with pytest.raises(UserError, match="lacks \\['model.bin', 'config.json'\\]"):
        check_whisper_dir(tmp_path)
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 9))
    with pytest.raises(UserError, match="format version 9"):
        read_model_file(tmp_path / "model.bin")
    (tmp_path / "model.bin").write_bytes(struct.pack("<IH", 6, 40) + b"WhisperSpec")
    with pytest.raises(UserError, match="truncated"):
        read_model_file(tmp_path / "model.bin")
