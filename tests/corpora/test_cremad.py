"""Tests of the CREMA-D reader: name parsing and demographics from VideoDemographics.csv."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from serhpo.corpora.base import LISTING_COLUMNS
from serhpo.corpora.cremad import CREMAD, list_utterances, parse_name, read_demographics
from serhpo.errors import UserError

DEMOGRAPHICS = (
    '"ActorID","Age","Sex","Race","Ethnicity"\n'
    '1001,51,"Male","Caucasian","Not Hispanic"\n'
    '1002,21,"Female","Caucasian","Not Hispanic"\n'
)


def _corpus(root: Path, names: list[str], *, demographics: str | None = DEMOGRAPHICS) -> Path:
    audio = root / "CREMA-D-master" / "AudioWAV"
    audio.mkdir(parents=True)
    for name in names:
        (audio / name).write_bytes(b"")
    if demographics is not None:
        (root / "CREMA-D-master" / "VideoDemographics.csv").write_text(demographics)
    return root


@pytest.mark.parametrize(
    ("name", "speaker", "sentence", "label", "level"),
    [
        ("1001_DFA_ANG_XX.wav", "1001", "DFA", "anger", "XX"),
        ("1091_WSI_DIS_HI.wav", "1091", "WSI", "disgust", "HI"),
        ("1050_IEO_HAP_LO.wav", "1050", "IEO", "happy", "LO"),
        ("1002_IEO_SAD_MD.wav", "1002", "IEO", "sad", "MD"),
        ("1003_TIE_NEU_XX.wav", "1003", "TIE", "neutral", "XX"),
        ("1004_ITS_FEA_XX.wav", "1004", "ITS", "fear", "XX"),
    ],
)
def test_parse_name_reads_each_field(name, speaker, sentence, label, level):
    row = parse_name(Path(name))
    assert row["utterance_id"] == Path(name).stem
    assert (row["speaker"], row["sentence"], row["original_label"], row["level"]) == (
        speaker,
        sentence,
        label,
        level,
    )


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("1000_DFA_ANG_XX.wav", "actor '1000'"),
        ("1092_DFA_ANG_XX.wav", "actor '1092'"),
        ("10a1_DFA_ANG_XX.wav", "actor '10a1'"),
        ("1001_XYZ_ANG_XX.wav", "sentence 'XYZ'"),
        ("1001_DFA_SUR_XX.wav", "emotion 'SUR'"),
        ("1001_DFA_ANG_ZZ.wav", "level 'ZZ'"),
        ("1001_DFA_ANG.wav", "3 underscore-separated parts"),
        ("1001_dfa_ang_xx.wav", "sentence 'dfa'"),
    ],
)
def test_parse_name_rejects_with_the_reason(name, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_name(Path(name))


def test_list_utterances_takes_gender_and_age_from_demographics_anywhere(tmp_path):
    root = _corpus(
        tmp_path, ["1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav", "1003_TIE_SAD_XX.wav", "bad.wav"]
    )
    listing = list_utterances(root)
    table = listing.utterances.set_index("utterance_id")
    assert list(listing.utterances.columns) == [*LISTING_COLUMNS, "level", "age"]
    assert table.loc["1001_DFA_ANG_XX", "gender"] == "male"
    assert table.loc["1002_IEO_HAP_HI", "gender"] == "female"
    assert table.loc["1003_TIE_SAD_XX", "gender"] == ""  # actor not in the table
    assert table["age"].dtype == "Int64"
    assert table.loc["1001_DFA_ANG_XX", "age"] == 51 and pd.isna(
        table.loc["1003_TIE_SAD_XX", "age"]
    )
    assert listing.unparsed["source_path"].str.endswith("bad.wav").tolist() == [True]


def test_list_utterances_without_demographics_warns_and_leaves_gender_empty(tmp_path, caplog):
    root = _corpus(tmp_path, ["1001_DFA_ANG_XX.wav"], demographics=None)
    with caplog.at_level(logging.WARNING, logger="serhpo.corpora.cremad"):
        listing = list_utterances(root)
    assert listing.utterances["gender"].tolist() == [""]
    assert listing.utterances["age"].isna().all()
    assert "VideoDemographics.csv" in caplog.text


def test_read_demographics_refuses_a_table_without_sex(tmp_path):
    path = tmp_path / "VideoDemographics.csv"
    path.write_text("ActorID,Age\n1001,51\n")
    with pytest.raises(UserError, match="without \\['Sex'\\]"):
        read_demographics(path)


def test_default_map_targets_emodb_names():
    assert CREMAD.default_label_map == {
        "anger": "anger",
        "disgust": "disgust",
        "fear": "fear",
        "happy": "happiness",
        "neutral": "neutral",
        "sad": "sadness",
    }
    assert (CREMAD.expected_count, CREMAD.sample_rate) == (7442, 16000)
