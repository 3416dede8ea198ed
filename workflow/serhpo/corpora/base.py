"""What every corpus reader provides: a listing of utterances parsed from a folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

#: Columns of :attr:`Listing.utterances`, in order. Readers may add more after these.
LISTING_COLUMNS = [
    "utterance_id",
    "source_path",
    "speaker",
    "gender",
    "sentence",
    "original_label",
]


@dataclass
class Listing:
    """Utterances found in a corpus folder.

    Attributes:
        utterances: one row per usable file name, columns :data:`LISTING_COLUMNS`
            (``source_path`` absolute, ``gender`` ``"female"``/``"male"``/``""``).
        unparsed: files that are not part of the corpus as named, with the reason
            (columns ``source_path`` and ``reason``); they go to the rejects CSV.
    """

    utterances: pd.DataFrame
    unparsed: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["source_path", "reason"])
    )


@dataclass(frozen=True)
class CorpusFormat:
    """A corpus' naming convention, labels and official size.

    Attributes:
        name: registry key (``emodb``, ``ravdess``, ``cremad``).
        labels: the corpus' own emotion labels, as the reader reports them.
        default_label_map: each own label onto the default target label set
            (EmoDB's seven), ``None`` to drop it; config's ``label_map`` overrides keys.
        expected_count: utterances in the official release (speech only).
        list_utterances: parses a folder (searched recursively) into a :class:`Listing`.
        sample_rate: the official release's sample rate, for the synthetic generator.
    """

    name: str
    labels: tuple[str, ...]
    default_label_map: dict[str, str | None]
    expected_count: int
    list_utterances: Callable[[Path], Listing]
    sample_rate: int
