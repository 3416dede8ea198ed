"""``serhpo export-table``: the README's worked example, a built-in corpus read as a table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from serhpo.cli import main
from serhpo.corpora import get_format
from serhpo.corpora.export import TABLE_COLUMNS, corpus_table
from serhpo.errors import UserError


def test_the_exported_table_lists_what_the_built_in_reader_lists(small_emodb: Path) -> None:
    table = corpus_table("emodb", small_emodb)
    listing = get_format("emodb").list_utterances(small_emodb)
    assert list(table.columns) == [*TABLE_COLUMNS, "version"]
    assert len(table) == len(listing.utterances) == 21
    assert table["file"].str.fullmatch(r"wav/\d\d[ab]\d\d[A-Z]a\.wav").all()
    assert set(table["emotion"]) == set(listing.utterances["original_label"])


@pytest.mark.parametrize("to", ["table", "audformat"])
def test_export_then_read_back_gives_the_same_utterances(
    small_emodb: Path, tmp_path: Path, to: str
) -> None:
    corpus = shutil.copytree(small_emodb, tmp_path / "emodb")  # the database is written into it
    out = tmp_path / "emodb.csv"
    args = ["export-table", "--format", "emodb", "--raw", str(corpus), "--to", to]
    assert main([*args, "--out", str(out)] if to == "table" else args) == 0
    options = {"table": str(out)} if to == "table" else {}
    listing = get_format(to, options, corpus="mine").list_utterances(corpus)
    built_in = get_format("emodb").list_utterances(corpus)
    columns = ["utterance_id", "source_path", "speaker", "gender", "sentence", "original_label"]
    ours = listing.utterances[columns].sort_values("utterance_id").reset_index(drop=True)
    theirs = built_in.utterances[columns].sort_values("utterance_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert listing.rejected.empty


def test_a_folder_of_another_corpus_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_bytes(b"")
    with pytest.raises(UserError, match="holds no file that the emodb reader lists"):
        corpus_table("emodb", tmp_path)
