"""The Berlin Database of Emotional Speech (EmoDB): file names, speakers and labels.

A name such as ``03a01Fa.wav`` holds the speaker (``03``), the text (``a01``), the emotion
(``F``, happiness) and the version (``a``). Its labels are already the target label set.
"""

from __future__ import annotations

from pathlib import Path

from serhpo.corpora.base import CorpusFormat, Listing
from serhpo.corpora.scan import ParsedName, build_listing, walk_files

#: Emotion letter (character 6, German initial) -> label.
EMOTION_CODES: dict[str, str] = {
    "W": "anger",  # Wut
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happiness",  # Freude
    "T": "sadness",  # Trauer
    "N": "neutral",
}

#: Speaker -> gender, from the official speaker table.
SPEAKER_GENDER: dict[str, str] = {
    **dict.fromkeys(["03", "10", "11", "12", "15"], "male"),
    **dict.fromkeys(["08", "09", "13", "14", "16"], "female"),
}

_CONVENTION = "EmoDB's convention SSTTTEV (speaker, text, emotion, version; e.g. 03a01Fa.wav)"


def parse_name(path: Path) -> ParsedName:
    """Parse an EmoDB file name.

    Speakers outside the official table are accepted with gender ``""``.

    Raises:
        ValueError: the name does not follow the convention; the message says which part.

    Example:
        >>> row = parse_name(Path("03a01Fa.wav"))
        >>> row["speaker"], row["sentence"], row["original_label"], row["gender"]
        ('03', 'a01', 'happiness', 'male')
    """
    stem = path.stem
    if len(stem) != 7:
        raise ValueError(
            f"name {stem!r} has {len(stem)} characters, not 7, so it does not follow {_CONVENTION}"
        )
    speaker, text, emotion, version = stem[0:2], stem[2:5], stem[5], stem[6]
    if not (speaker.isdigit() and speaker.isascii()):
        raise ValueError(f"speaker {speaker!r} of {stem!r} is not two digits ({_CONVENTION})")
    if not (text[0].isascii() and text[0].isalpha() and text[1:].isdigit() and text[1:].isascii()):
        raise ValueError(
            f"text {text!r} of {stem!r} is not a letter and two digits ({_CONVENTION})"
        )
    label = EMOTION_CODES.get(emotion.upper())
    if label is None:
        raise ValueError(
            f"emotion letter {emotion!r} of {stem!r} is not one of "
            f"{' '.join(EMOTION_CODES)} ({_CONVENTION})"
        )
    if not (version.isascii() and version.isalpha()):
        raise ValueError(f"version {version!r} of {stem!r} is not a letter ({_CONVENTION})")
    return {
        "utterance_id": stem,
        "speaker": speaker,
        "gender": SPEAKER_GENDER.get(speaker, ""),
        "sentence": text.lower(),
        "original_label": label,
        "version": version.lower(),
    }


def list_utterances(root: Path) -> Listing:
    """List the EmoDB WAV files anywhere under ``root``.

    Example:
        >>> listing = list_utterances(Path("resources/corpora/emodb/raw"))  # doctest: +SKIP
        >>> len(listing.utterances), listing.utterances["speaker"].nunique()  # doctest: +SKIP
        (535, 10)
    """
    return build_listing(
        walk_files(root), corpus="EmoDB", parse_name=parse_name, extra_columns=["version"]
    )


EMODB = CorpusFormat(
    name="emodb",
    labels=tuple(EMOTION_CODES.values()),
    default_label_map={label: label for label in EMOTION_CODES.values()},
    expected_count=535,
    list_utterances=list_utterances,
    sample_rate=16000,
)
