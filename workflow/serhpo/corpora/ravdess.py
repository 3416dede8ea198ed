"""The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS), speech part.

A name such as ``03-01-05-01-02-01-12.wav`` holds seven two-digit fields: modality (03 audio
only), vocal channel (01 speech, 02 song), emotion, intensity, statement, repetition and actor
(odd male, even female). Only audio-only speech is read; song and video files are reported as
unparsed with the reason.
"""

from __future__ import annotations

from pathlib import Path

from serhpo.corpora.base import CorpusFormat, Listing
from serhpo.corpora.scan import ParsedName, build_listing, walk_files

#: Emotion field -> label.
EMOTION_CODES: dict[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}

#: Intensity field -> intensity (neutral exists in normal intensity only).
INTENSITY_CODES: dict[str, str] = {"01": "normal", "02": "strong"}

_MODALITIES = {"01": "full audio-video", "02": "video only", "03": "audio only"}
_CONVENTION = "RAVDESS' convention MM-VV-EE-II-SS-RR-AA (e.g. 03-01-05-01-02-01-12.wav)"


def parse_name(path: Path) -> ParsedName:
    """Parse a RAVDESS file name; the speaker is the two-digit actor number.

    Raises:
        ValueError: the name does not follow the convention, or names a song or a video file;
            the message says which field.

    Example:
        >>> row = parse_name(Path("03-01-05-02-01-02-12.wav"))
        >>> row["speaker"], row["gender"], row["original_label"], row["intensity"]
        ('12', 'female', 'angry', 'strong')
    """
    stem = path.stem
    fields = stem.split("-")
    if len(fields) != 7 or not all(len(f) == 2 and f.isdigit() and f.isascii() for f in fields):
        raise ValueError(
            f"name {stem!r} is not seven two-digit fields, so it does not follow {_CONVENTION}"
        )
    modality, channel, emotion, intensity, statement, repetition, actor = fields
    if modality != "03":
        what = _MODALITIES.get(modality, "an unknown modality")
        raise ValueError(f"modality {modality} of {stem!r} is {what}, not audio only (03)")
    if channel == "02":
        raise ValueError(f"song, not speech: vocal channel 02 in {stem!r}")
    if channel != "01":
        raise ValueError(
            f"vocal channel {channel} of {stem!r} is neither 01 (speech) nor 02 (song)"
        )
    if emotion not in EMOTION_CODES:
        raise ValueError(f"emotion {emotion} of {stem!r} is not one of 01-08 ({_CONVENTION})")
    if intensity not in INTENSITY_CODES:
        raise ValueError(f"intensity {intensity} of {stem!r} is not 01 or 02 ({_CONVENTION})")
    if statement not in ("01", "02"):
        raise ValueError(f"statement {statement} of {stem!r} is not 01 or 02 ({_CONVENTION})")
    if repetition not in ("01", "02"):
        raise ValueError(f"repetition {repetition} of {stem!r} is not 01 or 02 ({_CONVENTION})")
    if actor == "00":
        raise ValueError(f"actor 00 of {stem!r}: actors are numbered from 01 ({_CONVENTION})")
    return {
        "utterance_id": stem,
        "speaker": actor,
        "gender": "male" if int(actor) % 2 else "female",
        "sentence": statement,
        "original_label": EMOTION_CODES[emotion],
        "intensity": INTENSITY_CODES[intensity],
        "repetition": int(repetition),
    }


def list_utterances(root: Path) -> Listing:
    """List the RAVDESS speech WAV files anywhere under ``root`` (e.g. ``Actor_01/...``).

    Example:
        >>> listing = list_utterances(Path("resources/corpora/ravdess/raw"))  # doctest: +SKIP
        >>> len(listing.utterances), listing.utterances["speaker"].nunique()  # doctest: +SKIP
        (1440, 24)
    """
    return build_listing(
        walk_files(root),
        corpus="RAVDESS",
        parse_name=parse_name,
        extra_columns=["intensity", "repetition"],
    )


RAVDESS = CorpusFormat(
    name="ravdess",
    labels=tuple(EMOTION_CODES.values()),
    default_label_map={
        "neutral": "neutral",
        "calm": "neutral",
        "happy": "happiness",
        "sad": "sadness",
        "angry": "anger",
        "fearful": "fear",
        "disgust": "disgust",
        "surprised": None,
    },
    expected_count=1440,
    list_utterances=list_utterances,
    sample_rate=48000,
)
