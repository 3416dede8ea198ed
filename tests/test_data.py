"""Reading split CSVs, maxlen truncation and padding, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

from serhpo.data import FeatureItem, Preprocessing, batches, collate, load_split, read_waveform
from serhpo.errors import UserError

RATE = 16000


@pytest.fixture
def split_csv(tmp_path: Path) -> Path:
    """Six prepared files (relative paths), two folds, a test part whose audio is missing."""
    (tmp_path / "16k").mkdir()
    rows = []
    for index in range(6):
        path = Path("16k") / f"u{index}.wav"
        soundfile.write(tmp_path / path, np.zeros(RATE // 2, dtype=np.float32) + 0.1, RATE)
        rows.append(
            {
                "utterance_id": f"u{index}",
                "path": str(path),
                "corpus": "demo",
                "speaker": f"s{index % 3}",
                "label": ["anger", "sadness"][index % 2],
                "num_samples": RATE // 2,
                "part": "valid" if index >= 4 else "train",
                "fold": index % 2,
            }
        )
    rows.append({**rows[0], "utterance_id": "t0", "path": "16k/missing.wav", "part": "test"})
    csv = tmp_path / "split.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def test_load_split_reads_train_and_valid_only(split_csv):
    data = load_split(split_csv, root=split_csv.parent)  # the test file does not exist
    assert [len(data.parts[p]) for p in ("train", "valid")] == [4, 2]
    assert data.labels == ("anger", "sadness")
    assert data.targets("train").tolist() == [0, 1, 0, 1]
    assert data.parts["train"][0].path.is_absolute()


def test_load_split_keeps_the_configured_label_order(split_csv):
    data = load_split(split_csv, root=split_csv.parent, labels=["sadness", "anger", "fear"])
    assert data.targets("valid").tolist() == [1, 0]


def test_load_split_errors_say_what_to_do(split_csv, tmp_path):
    with pytest.raises(UserError, match="outside the target labels"):
        load_split(split_csv, root=split_csv.parent, labels=["anger"])
    with pytest.raises(UserError, match="does not exist"):
        load_split(split_csv, root=split_csv.parent, parts=("test",))
    with pytest.raises(UserError, match="lacks column"):
        pd.read_csv(split_csv).drop(columns="part").to_csv(tmp_path / "bad.csv", index=False)
        load_split(tmp_path / "bad.csv")


def test_fold_turns_one_fold_into_the_valid_part(split_csv):
    data = load_split(split_csv, root=split_csv.parent, fold=1)
    assert [u.utterance_id for u in data.parts["valid"]] == ["u1", "u3", "u5"]
    assert [u.utterance_id for u in data.parts["train"]] == ["u0", "u2", "u4"]


def test_read_waveform_rejects_unprepared_audio(tmp_path):
    soundfile.write(tmp_path / "a.wav", np.zeros((100, 2), dtype=np.float32), 44100)
    with pytest.raises(UserError, match="expected prepared mono 16000 Hz"):
        read_waveform(tmp_path / "a.wav")


@pytest.mark.parametrize(
    ("maxlen", "padding", "length", "valid", "variant"),
    [
        (None, True, 7, 7, "full"),
        (5, True, 5, 5, "first5"),
        (10, True, 10, 7, "pad10"),
        (10, False, 7, 7, "full"),
        (7, True, 7, 7, "full"),
    ],
)
def test_preprocessing_truncates_and_pads(maxlen, padding, length, valid, variant):
    prep = Preprocessing(maxlen=maxlen, padding=padding)
    waveform, valid_samples = prep.apply(torch.arange(1, 8, dtype=torch.float32))
    assert waveform.shape == (length,) and valid_samples == valid
    assert prep.output_length(7) == length and prep.variant(7) == variant
    assert torch.all(waveform[valid:] == 0) and waveform[0] == 1


def test_collate_pads_sequences_and_stacks_vectors():
    batch, lengths = collate([FeatureItem(torch.ones(2, 3), 2), FeatureItem(torch.ones(5, 3), 4)])
    assert batch.shape == (2, 5, 3) and lengths.tolist() == [2, 4]
    assert batch[0, 2:].abs().sum() == 0
    vectors, _ = collate([FeatureItem(torch.ones(4, dtype=torch.float16), 1)] * 3)
    assert vectors.shape == (3, 4) and vectors.dtype == torch.float32


def test_batches_order_depends_only_on_the_generator():
    first = list(
        batches(10, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3))
    )
    again = list(
        batches(10, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3))
    )
    assert first == again and sorted(sum(first, [])) == list(range(10))
    assert [len(b) for b in first] == [4, 4, 2]
