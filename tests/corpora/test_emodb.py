"""Tests of the EmoDB reader: name parsing, listing, and the real corpus when present."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from serhpo.corpora.base import LISTING_COLUMNS
from serhpo.corpora.emodb import EMODB, SPEAKER_GENDER, list_utterances, parse_name

REAL_EMODB = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora" / "emodb-2s"


@pytest.mark.parametrize(
    ("name", "speaker", "gender", "sentence", "label", "version"),
    [
        ("03a01Fa.wav", "03", "male", "a01", "happiness", "a"),
        ("16b10Tb.wav", "16", "female", "b10", "sadness", "b"),
        ("08a02Lc.wav", "08", "female", "a02", "boredom", "c"),
        ("10b03Ea.wav", "10", "male", "b03", "disgust", "a"),
        ("13a05Aa.wav", "13", "female", "a05", "fear", "a"),
        ("11b01Wd.wav", "11", "male", "b01", "anger", "d"),
        ("99a01Nb.wav", "99", "", "a01", "neutral", "b"),  # not in the speaker table
    ],
)
def test_parse_name_reads_each_field(name, speaker, gender, sentence, label, version):
    row = parse_name(Path(name))
    assert row["utterance_id"] == Path(name).stem
    assert (row["speaker"], row["gender"], row["sentence"]) == (speaker, gender, sentence)
    assert (row["original_label"], row["version"]) == (label, version)


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("03a01Xa.wav", "emotion letter 'X'"),
        ("03a01Fab.wav", "8 characters"),
        ("03a1Fa.wav", "6 characters"),
        ("x3a01Fa.wav", "speaker 'x3'"),
        ("03aa1Fa.wav", "text 'aa1'"),
        ("03a01F1.wav", "version '1'"),
        ("._03a01Fa.wav", "9 characters"),  # macOS resource fork beside the real file
        ("1001_DFA_ANG_XX.wav", "15 characters"),  # another corpus' file
    ],
)
def test_parse_name_rejects_names_off_the_convention(name, complaint):
    with pytest.raises(ValueError, match=complaint) as caught:
        parse_name(Path(name))
    assert "03a01Fa.wav" in str(caught.value)  # the message shows a good name


def test_list_utterances_searches_subfolders_and_reports_bad_names(tmp_path):
    for relative in [
        "wav/03a01Fa.wav",
        "wav/more/16b10Tb.wav",
        "wav/badname.wav",
        "lablaut/03a01Fa.lab",
    ]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    listing = list_utterances(tmp_path)
    table = listing.utterances
    assert list(table.columns) == [*LISTING_COLUMNS, "version"]
    assert table["utterance_id"].tolist() == ["03a01Fa", "16b10Tb"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table["source_path"])
    assert listing.unparsed["source_path"].tolist() == [str(tmp_path / "wav" / "badname.wav")]


def test_format_maps_its_seven_labels_onto_themselves():
    assert EMODB.name == "emodb" and EMODB.expected_count == 535 and EMODB.sample_rate == 16000
    assert set(EMODB.labels) == {
        "anger",
        "boredom",
        "disgust",
        "fear",
        "happiness",
        "sadness",
        "neutral",
    }
    assert EMODB.default_label_map == {label: label for label in EMODB.labels}


def test_real_emodb_is_read_completely_and_fast():
    if not REAL_EMODB.is_dir():
        pytest.skip(f"the real EmoDB copy is not at {REAL_EMODB}")
    started = time.perf_counter()
    listing = EMODB.list_utterances(REAL_EMODB)
    elapsed = time.perf_counter() - started
    table = listing.utterances
    assert listing.unparsed.empty
    assert len(table) == 535 and table["utterance_id"].is_unique
    assert sorted(table["speaker"].unique()) == sorted(SPEAKER_GENDER)
    assert set(table["original_label"]) == set(EMODB.labels)
    genders = table.groupby("speaker")["gender"].unique().map(list).to_dict()
    assert genders == {speaker: [gender] for speaker, gender in SPEAKER_GENDER.items()}
    assert elapsed < 2.0
