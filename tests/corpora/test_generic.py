"""The row checks every generic source (CSV table, audformat database) goes through."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from serhpo.corpora.generic import (
    ROW_COLUMNS,
    Columns,
    SourceOptions,
    derived_ids,
    extra_column_name,
    listing_from_rows,
    normalise_gender,
)
from serhpo.errors import UserError


def rows(*entries: tuple[str, ...], ids: list[str] | None = None) -> pd.DataFrame:
    """Rows (path, speaker, label[, gender]) at lines 2, 3, ..."""
    table = pd.DataFrame(
        [
            [f"t.csv line {n + 2}", path, speaker, label, gender[0] if gender else "", ""]
            for n, (path, speaker, label, *gender) in enumerate(entries)
        ],
        columns=ROW_COLUMNS,
    )
    if ids is not None:
        table["id"] = ids
    return table


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for name in ("a/x.wav", "b/x.wav", "c.wav", "d.wav", "e.flac"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"RIFF")
    (tmp_path / "outside.wav").write_bytes(b"RIFF")
    os.symlink(tmp_path / "outside.wav", root / "link_out.wav")
    os.symlink(root / "c.wav", root / "link_in.wav")
    (root / "folder.wav").mkdir()
    return root


def reasons(listing) -> list[str]:
    return [reason.split(":")[0] for reason in listing.rejected["reason"]]


def test_good_rows_become_utterances_with_absolute_paths_and_ids(corpus: Path) -> None:
    listing = listing_from_rows(
        rows(
            ("c.wav", "s1", "angry", "F"),
            ("./d.wav", "s2", "sad", "male"),
            ("link_in.wav", "s1", "sad"),
        ),
        root=corpus,
    )
    assert listing.rejected.empty
    table = listing.utterances.set_index("utterance_id")
    assert list(table.index) == ["c", "d", "link_in"]
    assert table.loc["d", "source_path"] == str(corpus.resolve() / "d.wav")
    assert list(table["gender"]) == ["female", "male", ""]
    assert listing.labels == ("angry", "sad")


@pytest.mark.parametrize(
    ("path", "category"),
    [
        ("../outside.wav", "outside the folder"),
        ("a/../../outside.wav", "outside the folder"),
        ("/etc/passwd", "outside the folder"),
        ("C:\\data\\c.wav", "outside the folder"),
        ("link_out.wav", "outside the folder"),
        ("nothere.wav", "missing"),
        ("folder.wav", "missing"),
        ("", "no path"),
    ],
)
def test_a_path_that_names_no_file_inside_the_folder_is_rejected(
    corpus: Path, path: str, category: str
) -> None:
    listing = listing_from_rows(rows((path, "s1", "angry"), ("c.wav", "s1", "angry")), root=corpus)
    assert reasons(listing) == [category]
    assert "t.csv line 2" in listing.rejected["reason"].iloc[0]
    assert list(listing.utterances["utterance_id"]) == ["c"]  # nothing else is lost


def test_backslashes_are_folder_separators(corpus: Path) -> None:
    listing = listing_from_rows(rows(("a\\x.wav", "s1", "angry")), root=corpus)
    assert listing.utterances["source_path"].iloc[0].endswith("a/x.wav")


def test_a_repeated_row_keeps_the_first_and_conflicting_rows_keep_none(corpus: Path) -> None:
    listing = listing_from_rows(
        rows(
            ("c.wav", "s1", "angry"),
            ("./c.wav", "s1", "angry"),
            ("d.wav", "s1", "angry"),
            ("d.wav", "s1", "sad"),
        ),
        root=corpus,
    )
    assert list(listing.utterances["utterance_id"]) == ["c"]
    assert reasons(listing) == ["duplicate", "conflicting rows", "conflicting rows"]
    assert "line 2 is kept" in listing.rejected["reason"].iloc[0]
    assert "'angry'" in listing.rejected["reason"].iloc[1]
    assert "'sad'" in listing.rejected["reason"].iloc[1]


def test_empty_cells_and_undeclared_labels_are_rejected(corpus: Path) -> None:
    listing = listing_from_rows(
        rows(("c.wav", "s1", ""), ("d.wav", "", "angry"), ("e.flac", "s1", "angyr")),
        root=corpus,
        labels=["angry", "sad"],
    )
    assert listing.utterances.empty
    assert reasons(listing) == ["no label", "no speaker", "unknown label"]
    assert "['angry', 'sad']" in listing.rejected["reason"].iloc[2]
    assert listing.labels == ("angry", "sad")


def test_files_sharing_a_name_get_ids_from_their_paths() -> None:
    assert derived_ids(["a/x.wav", "b/x.wav", "c.wav"]) == ["a__x", "b__x", "c"]
    assert derived_ids(["x.wav", "x.flac"]) == ["x.wav", "x.flac"]


def test_given_ids_must_name_a_file_once(corpus: Path) -> None:
    listing = listing_from_rows(
        rows(
            ("c.wav", "s1", "angry"), ("d.wav", "s1", "angry"), ("e.flac", "s1", "sad"),
            ("a/x.wav", "s1", "sad"),
            ids=["u1", "u1", "a/b", "u2"],
        ),
        root=corpus,
    )  # fmt: skip
    assert list(listing.utterances["utterance_id"]) == ["u1", "u2"]
    assert reasons(listing) == ["bad utterance id", "bad utterance id"]


def test_gender_spellings_are_read_as_female_and_male() -> None:
    assert [normalise_gender(g) for g in ("F", "w", "Female", "M", "man", "x", "")] == [
        "female", "female", "female", "male", "male", "x", "",
    ]  # fmt: skip


def test_options_refuse_unknown_keys_and_empty_required_columns() -> None:
    options = SourceOptions.from_config("mine", {"table": "t.csv", "columns": {"label": "mood"}})
    assert options.columns == Columns(label="mood") and options.table == "t.csv"
    with pytest.raises(UserError, match=r"\['tabel', 'columns.emotion'\].*corpora.mine"):
        SourceOptions.from_config("mine", {"tabel": "t.csv", "columns": {"emotion": "x"}})
    with pytest.raises(UserError, match="columns.speaker is empty"):
        SourceOptions.from_config("mine", {"columns": {"speaker": ""}})


def test_extra_columns_named_like_a_field_are_renamed_and_refused_unrenamed(corpus: Path) -> None:
    assert extra_column_name("speaker", prefix="table_") == "table_speaker"
    assert extra_column_name("id", prefix="files.") == "files.id"
    assert extra_column_name("mood", prefix="table_") == "mood"
    assert extra_column_name("speaker", prefix="t_", taken=["t_speaker"]) == "t_t_speaker"
    extra = rows(("c.wav", "s1", "angry")).assign(mood="calm")
    listing = listing_from_rows(extra, root=corpus, extra_columns=["mood"])
    assert listing.utterances["mood"].tolist() == ["calm"]
    with pytest.raises(ValueError, match=r"\['speaker'\] would overwrite"):
        listing_from_rows(rows(("c.wav", "s1", "angry")), root=corpus, extra_columns=["speaker"])
