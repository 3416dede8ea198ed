"""The reader registry: built-in and generic formats, and a corpus without a reader."""

from __future__ import annotations

import pytest

from serhpo.corpora import format_name, get_format
from serhpo.errors import UserError


def test_generic_formats_are_built_from_their_options() -> None:
    fmt = get_format("table", {"columns": {"label": "mood"}}, corpus="tess")
    assert fmt.name == "table" and fmt.labels == () and fmt.expected_count is None
    assert get_format("audformat").name == "audformat"
    with pytest.raises(ValueError, match=r"'tess'.*\['cremad', 'emodb', 'ravdess', 'table', "):
        get_format("tess")


def test_a_corpus_named_like_no_reader_needs_a_format() -> None:
    assert format_name("tess", {"format": "table"}) == "table"
    assert format_name("emodb", {"format": None}) == "emodb"
    with pytest.raises(
        UserError, match=r"corpus 'tess' has no reader.*corpora.tess.format to table"
    ):
        format_name("tess", {"format": None})
