"""Finding a corpus' audio files under a folder and turning parsed names into a :class:`Listing`.

Every reader (EmoDB, RAVDESS, CREMA-D) shares this walk; each supplies only its name parser.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from serhpo.corpora.base import LISTING_COLUMNS, Listing
from serhpo.errors import UserError

#: What a name parser returns: the listing's columns except ``source_path``.
ParsedName = dict[str, Any]

#: Suffixes of the containers libsndfile decodes: files named so are recordings, whatever
#: their container (a FLAC copy of a corpus is read like its WAVs).
AUDIO_SUFFIXES: frozenset[str] = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
     ".snd", ".w64", ".caf", ".rf64"}
)  # fmt: skip


def walk_files(root: Path) -> list[Path]:
    """Return every file under ``root`` (recursively, following folder links once), sorted.

    Paths are absolute but not resolved, so that a user's symlinked layout is kept.

    Raises:
        UserError: ``root`` is not an existing folder.

    Example:
        >>> [p.name for p in walk_files(Path("corpus"))]  # doctest: +SKIP
        ['03a01Fa.wav', '03a01Nc.wav']
    """
    if not root.is_dir():
        found = "a file" if root.exists() else "nothing"
        raise UserError(
            f"corpus folder {root} is {found}; expected a folder that holds the corpus' files. "
            "Point corpora.<name>.source in config.yaml at that folder, or use source: download."
        )
    files: list[Path] = []
    visited: set[tuple[int, int]] = set()
    for folder, subfolders, names in os.walk(os.path.abspath(root), followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in visited:  # a link loop: this folder was walked already
            subfolders.clear()
            continue
        visited.add((stat.st_dev, stat.st_ino))
        files.extend(Path(folder, name) for name in names)
    return sorted(files)


def build_listing(
    files: Sequence[Path],
    *,
    corpus: str,
    parse_name: Callable[[Path], ParsedName],
    extra_columns: Sequence[str] = (),
) -> Listing:
    """Parse the audio files among ``files`` into a :class:`Listing`.

    A file whose suffix is one of :data:`AUDIO_SUFFIXES` (any case) is a recording; the others
    are counted per suffix in ``Listing.ignored``. A recording whose name ``parse_name``
    rejects (by raising ``ValueError`` with the reason), or whose utterance id was already
    seen (``03a01Fa.flac`` beside ``03a01Fa.wav``: WAVs are taken first), goes to
    ``Listing.unparsed``.

    Args:
        files: candidate files, e.g. from :func:`walk_files`.
        corpus: the corpus' display name, for reasons.
        parse_name: returns the :data:`LISTING_COLUMNS` (except ``source_path``) and
            ``extra_columns`` for one file, or raises ``ValueError(reason)``.
        extra_columns: corpus-specific columns placed after :data:`LISTING_COLUMNS`.

    Example:
        >>> files = walk_files(root)  # doctest: +SKIP
        >>> listing = build_listing(files, corpus="EmoDB", parse_name=parse)  # doctest: +SKIP
        >>> list(listing.utterances.columns)[:2]  # doctest: +SKIP
        ['utterance_id', 'source_path']
    """
    columns = [*LISTING_COLUMNS, *extra_columns]
    rows: list[ParsedName] = []
    unparsed: list[dict[str, str]] = []
    first_path_of: dict[str, str] = {}
    ignored: dict[str, int] = {}
    # WAVs first: of an utterance in two containers (CREMA-D's AudioWAV and AudioMP3), the
    # lossless one is kept and the other rejected as its duplicate.
    for path in sorted(files, key=lambda p: (p.suffix.lower() != ".wav", str(p))):
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            suffix = path.suffix.lower() or "(none)"
            ignored[suffix] = ignored.get(suffix, 0) + 1
            continue
        source_path = str(path)
        try:
            row = parse_name(path)
        except ValueError as error:
            unparsed.append({"source_path": source_path, "reason": str(error)})
            continue
        utterance_id = row["utterance_id"]
        if utterance_id in first_path_of:
            unparsed.append(
                {
                    "source_path": source_path,
                    "reason": f"duplicate {corpus} utterance {utterance_id}: "
                    f"also at {first_path_of[utterance_id]}",
                }
            )
            continue
        first_path_of[utterance_id] = source_path
        rows.append({**row, "source_path": source_path})
    return Listing(
        utterances=pd.DataFrame(rows, columns=columns),
        unparsed=pd.DataFrame(unparsed, columns=["source_path", "reason"]),
        ignored=dict(sorted(ignored.items())),
    )
