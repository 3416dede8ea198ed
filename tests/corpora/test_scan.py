"""Tests of the shared walk and listing builder of the corpus readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from serhpo.corpora.base import LISTING_COLUMNS
from serhpo.corpora.scan import build_listing, walk_files
from serhpo.errors import UserError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _parse(path: Path) -> dict[str, object]:
    if not path.stem.startswith("u"):
        raise ValueError(f"{path.stem!r} does not start with u")
    return {
        "utterance_id": path.stem,
        "speaker": "s1",
        "gender": "",
        "sentence": "t1",
        "original_label": "anger",
        "extra": 1,
    }


def test_walk_files_is_recursive_sorted_and_absolute(tmp_path, monkeypatch):
    _touch(tmp_path / "b" / "u2.wav")
    _touch(tmp_path / "a" / "deeper" / "u1.wav")
    monkeypatch.chdir(tmp_path)
    files = walk_files(Path("."))
    assert [p.name for p in files] == ["u1.wav", "u2.wav"]
    assert all(p.is_absolute() for p in files)


def test_walk_files_follows_folder_links_without_looping(tmp_path):
    outside = tmp_path / "elsewhere"
    _touch(outside / "u9.wav")
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (outside / "loop").symlink_to(root, target_is_directory=True)
    names = [p.name for p in walk_files(root)]
    assert names.count("u9.wav") == 1


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.write_text("x")])
def test_walk_files_refuses_a_missing_folder_or_a_file(tmp_path, make):
    root = tmp_path / "corpus"
    make(root)
    with pytest.raises(UserError, match="corpora.<name>.source"):
        walk_files(root)


def test_build_listing_keeps_every_wav_in_one_of_two_tables(tmp_path):
    files = [
        _touch(tmp_path / "u1.wav"),
        _touch(tmp_path / "U_upper.WAV"),  # upper-case suffix is still a WAV
        _touch(tmp_path / "notes.txt"),  # not a recording: neither table
        _touch(tmp_path / "x" / "u1.wav"),  # same utterance twice
        _touch(tmp_path / "u2.wav"),
    ]
    listing = build_listing(files, corpus="Test", parse_name=_parse, extra_columns=["extra"])
    table = listing.utterances
    assert list(table.columns) == [*LISTING_COLUMNS, "extra"]
    assert table["utterance_id"].tolist() == ["u1", "u2"]
    assert table["source_path"].tolist() == [str(files[0]), str(files[4])]
    reasons = dict(zip(listing.unparsed["source_path"], listing.unparsed["reason"], strict=True))
    assert "does not start with u" in reasons[str(files[1])]
    assert "duplicate Test utterance u1" in reasons[str(files[3])]
    assert str(files[2]) not in reasons


def test_build_listing_of_nothing_has_the_columns():
    listing = build_listing([], corpus="Test", parse_name=_parse)
    assert list(listing.utterances.columns) == LISTING_COLUMNS
    assert listing.utterances.empty and listing.unparsed.empty


def test_every_audio_container_is_a_recording_and_other_files_are_counted(tmp_path):
    files = [
        _touch(tmp_path / "a" / "u1.flac"),  # FLAC first by path, but the WAV is kept
        _touch(tmp_path / "b" / "u1.wav"),
        _touch(tmp_path / "u2.FLAC"),  # a recording in another container: never left out
        _touch(tmp_path / "README.md"),
        _touch(tmp_path / "u3.lab"),
        _touch(tmp_path / "LICENSE"),
    ]
    listing = build_listing(files, corpus="Test", parse_name=_parse)
    assert listing.utterances["source_path"].tolist() == [str(files[1]), str(files[2])]
    reasons = dict(zip(listing.unparsed["source_path"], listing.unparsed["reason"], strict=True))
    assert reasons == {str(files[0]): f"duplicate Test utterance u1: also at {files[1]}"}
    assert listing.ignored == {"(none)": 1, ".lab": 1, ".md": 1}
