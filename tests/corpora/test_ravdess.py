"""Tests of the RAVDESS reader: name parsing, song and video files, and the real sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from serhpo.corpora.base import LISTING_COLUMNS
from serhpo.corpora.ravdess import RAVDESS, list_utterances, parse_name

REAL_RAVDESS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora" / "ravdess-sample"


@pytest.mark.parametrize(
    ("name", "speaker", "gender", "sentence", "label", "intensity", "repetition"),
    [
        ("03-01-01-01-01-01-01.wav", "01", "male", "01", "neutral", "normal", 1),
        ("03-01-02-02-02-02-02.wav", "02", "female", "02", "calm", "strong", 2),
        ("03-01-05-02-01-02-12.wav", "12", "female", "01", "angry", "strong", 2),
        ("03-01-08-01-02-01-23.wav", "23", "male", "02", "surprised", "normal", 1),
        ("03-01-07-01-01-01-24.WAV", "24", "female", "01", "disgust", "normal", 1),
    ],
)
def test_parse_name_reads_each_field(name, speaker, gender, sentence, label, intensity, repetition):
    row = parse_name(Path(name))
    assert row["utterance_id"] == Path(name).stem
    assert (row["speaker"], row["gender"], row["sentence"]) == (speaker, gender, sentence)
    assert (row["original_label"], row["intensity"], row["repetition"]) == (
        label,
        intensity,
        repetition,
    )


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("03-02-05-01-01-01-01.wav", "song, not speech"),
        ("01-01-05-01-01-01-01.wav", "full audio-video, not audio only"),
        ("02-01-05-01-01-01-01.wav", "video only"),
        ("03-03-05-01-01-01-01.wav", "vocal channel 03"),
        ("03-01-09-01-01-01-01.wav", "emotion 09"),
        ("03-01-05-03-01-01-01.wav", "intensity 03"),
        ("03-01-05-01-03-01-01.wav", "statement 03"),
        ("03-01-05-01-01-03-01.wav", "repetition 03"),
        ("03-01-05-01-01-01-00.wav", "actor 00"),
        ("03-01-05-01-01-01.wav", "not seven two-digit fields"),
        ("03-01-5-01-01-01-01.wav", "not seven two-digit fields"),
        ("03a01Fa.wav", "not seven two-digit fields"),
    ],
)
def test_parse_name_rejects_with_the_reason(name, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_name(Path(name))


def test_list_utterances_puts_songs_in_unparsed(tmp_path):
    for relative in ["Actor_01/03-01-03-01-01-01-01.wav", "Actor_01/03-02-03-01-01-01-01.wav"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    listing = list_utterances(tmp_path)
    assert list(listing.utterances.columns) == [*LISTING_COLUMNS, "intensity", "repetition"]
    assert listing.utterances["utterance_id"].tolist() == ["03-01-03-01-01-01-01"]
    assert listing.unparsed["reason"].str.contains("song, not speech").tolist() == [True]


def test_default_map_targets_emodb_names_and_drops_surprised():
    assert set(RAVDESS.default_label_map) == set(RAVDESS.labels)
    assert RAVDESS.default_label_map["calm"] == "neutral"
    assert RAVDESS.default_label_map["angry"] == "anger"
    assert RAVDESS.default_label_map["surprised"] is None
    assert (RAVDESS.expected_count, RAVDESS.sample_rate) == (1440, 48000)


def test_real_ravdess_sample_is_read_completely():
    if not REAL_RAVDESS.is_dir():
        pytest.skip(f"the RAVDESS sample is not at {REAL_RAVDESS}")
    listing = RAVDESS.list_utterances(REAL_RAVDESS)
    table = listing.utterances
    assert listing.unparsed.empty
    assert len(table) == 120 and table["utterance_id"].is_unique
    assert table.groupby("speaker")["gender"].unique().map(list).to_dict() == {
        "01": ["male"],
        "02": ["female"],
    }
    assert set(table["original_label"]) == set(RAVDESS.labels)
    assert set(table["intensity"]) == {"normal", "strong"}
