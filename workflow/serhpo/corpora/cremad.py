"""The Crowd-sourced Emotional Multimodal Actors Dataset (CREMA-D): names and demographics.

A name such as ``1001_DFA_ANG_XX.wav`` holds the actor (1001-1091), the sentence code, the
emotion and the emotion level (LO, MD, HI, or XX unspecified). Gender and age come from
``VideoDemographics.csv``, found anywhere under the corpus folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from serhpo.corpora.base import CorpusFormat, Listing
from serhpo.corpora.scan import ParsedName, build_listing, walk_files
from serhpo.errors import UserError

logger = logging.getLogger(__name__)

#: Emotion code -> label.
EMOTION_CODES: dict[str, str] = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}

#: The twelve sentences' codes (e.g. DFA "Don't forget a jacket").
SENTENCE_CODES: tuple[str, ...] = (
    "IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI",
)  # fmt: skip

#: Emotion levels: low, medium, high, unspecified.
LEVEL_CODES: tuple[str, ...] = ("LO", "MD", "HI", "XX")

#: The official actors' numbers.
ACTOR_RANGE = range(1001, 1092)

#: The demographics table of the official release.
DEMOGRAPHICS_NAME = "VideoDemographics.csv"

_CONVENTION = "CREMA-D's convention ACTOR_SENTENCE_EMOTION_LEVEL (e.g. 1001_DFA_ANG_XX.wav)"


def parse_name(path: Path) -> ParsedName:
    """Parse a CREMA-D file name; gender and age are left empty (see :func:`read_demographics`).

    Raises:
        ValueError: the name does not follow the convention; the message says which part.

    Example:
        >>> row = parse_name(Path("1001_DFA_ANG_XX.wav"))
        >>> row["speaker"], row["sentence"], row["original_label"], row["level"]
        ('1001', 'DFA', 'anger', 'XX')
    """
    stem = path.stem
    fields = stem.split("_")
    if len(fields) != 4:
        raise ValueError(
            f"name {stem!r} has {len(fields)} underscore-separated parts, not 4 ({_CONVENTION})"
        )
    actor, sentence, emotion, level = fields
    if not (actor.isdigit() and actor.isascii() and int(actor) in ACTOR_RANGE):
        raise ValueError(
            f"actor {actor!r} of {stem!r} is not a number in 1001-1091 ({_CONVENTION})"
        )
    if sentence not in SENTENCE_CODES:
        raise ValueError(
            f"sentence {sentence!r} of {stem!r} is not one of {' '.join(SENTENCE_CODES)}"
        )
    if emotion not in EMOTION_CODES:
        raise ValueError(f"emotion {emotion!r} of {stem!r} is not one of {' '.join(EMOTION_CODES)}")
    if level not in LEVEL_CODES:
        raise ValueError(f"level {level!r} of {stem!r} is not one of {' '.join(LEVEL_CODES)}")
    return {
        "utterance_id": stem,
        "speaker": actor,
        "gender": "",
        "sentence": sentence,
        "original_label": EMOTION_CODES[emotion],
        "level": level,
        "age": pd.NA,
    }


def read_demographics(path: Path) -> pd.DataFrame:
    """Read ``VideoDemographics.csv`` into a table indexed by actor with ``gender`` and ``age``.

    ``gender`` is ``"female"``, ``"male"`` or ``""``; ``age`` an integer or ``<NA>``.

    Raises:
        UserError: the file lacks the ActorID, Age or Sex column.

    Example:
        >>> read_demographics(Path("VideoDemographics.csv")).loc["1001"].tolist()  # doctest: +SKIP
        ['male', 51]
    """
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in ("ActorID", "Age", "Sex") if column not in table.columns]
    if missing:
        raise UserError(
            f"{path} has columns {list(table.columns)}, without {missing}; expected CREMA-D's "
            "VideoDemographics.csv (ActorID,Age,Sex,Race,Ethnicity). "
            "Replace it with the official file."
        )
    table = table.assign(ActorID=table["ActorID"].str.strip()).drop_duplicates("ActorID")
    sex = table["Sex"].str.strip().str.lower()
    return pd.DataFrame(
        {
            "gender": sex.where(sex.isin(["female", "male"]), "").to_numpy(),
            "age": pd.to_numeric(table["Age"].str.strip(), errors="coerce").astype("Int64").array,
        },
        index=pd.Index(table["ActorID"], name="speaker"),
    )


def list_utterances(root: Path) -> Listing:
    """List the CREMA-D WAV files anywhere under ``root``, with gender and age per actor.

    Without a ``VideoDemographics.csv`` under ``root``, gender is ``""`` and age ``<NA>`` for
    every actor, and a warning is logged.

    Example:
        >>> listing = list_utterances(Path("resources/corpora/cremad/raw"))  # doctest: +SKIP
        >>> len(listing.utterances), sorted(listing.utterances["gender"].unique())  # doctest: +SKIP
        (7442, ['female', 'male'])
    """
    files = walk_files(root)
    listing = build_listing(
        files, corpus="CREMA-D", parse_name=parse_name, extra_columns=["level", "age"]
    )
    utterances = listing.utterances
    tables = sorted((p for p in files if p.name == DEMOGRAPHICS_NAME), key=lambda p: len(p.parts))
    if not tables:
        logger.warning(
            "no %s under %s: gender and age are unknown for every CREMA-D speaker. "
            "Put the file from the official CREMA-D repository anywhere under that folder.",
            DEMOGRAPHICS_NAME,
            root,
        )
        utterances["age"] = utterances["age"].astype("Int64")
        return listing
    demographics = read_demographics(tables[0])
    logger.info("gender and age of CREMA-D speakers from %s", tables[0])
    matched = demographics.reindex(utterances["speaker"]).reset_index(drop=True)
    utterances["gender"] = matched["gender"].fillna("")
    utterances["age"] = matched["age"]
    unknown = sorted(set(utterances["speaker"]) - set(demographics.index))
    if unknown:
        logger.warning(
            "%s has no row for CREMA-D actor(s) %s: their gender and age are unknown",
            tables[0],
            ", ".join(unknown),
        )
    return listing


CREMAD = CorpusFormat(
    name="cremad",
    labels=tuple(EMOTION_CODES.values()),
    default_label_map={
        "anger": "anger",
        "disgust": "disgust",
        "fear": "fear",
        "happy": "happiness",
        "neutral": "neutral",
        "sad": "sadness",
    },
    expected_count=7442,
    list_utterances=list_utterances,
    sample_rate=16000,
)
