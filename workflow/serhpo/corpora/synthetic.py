"""Synthetic speech-emotion corpora in the layouts of EmoDB, RAVDESS and CREMA-D, and a
TESS-like folder described by a CSV table or an audformat database (the generic formats).

The demo pipeline and the tests run offline on these corpora, and they go through the real
corpus readers, so each corpus is written in its own file naming, folder layout, sample rate
and channel layout. The audio is a source-filter model written with numpy:

- a speaker has an f0 level, a vocal tract length (formant scaling), breathiness, a spectral
  tilt, a speaking rate and an expressiveness; each corpus draws its own speakers;
- a sentence code is a fixed sequence of syllables (consonant noise, then a vowel made of
  harmonics through four formant resonators);
- an emotion is a prosodic prototype relative to the speaker (pitch level, range and final
  contour, energy, tempo, spectral tilt, jitter, shimmer, creak, breathiness), scaled by the
  corpus' intensity code and varied per utterance so that classes overlap;
- each corpus has its own channel (a fixed EQ curve and noise floor), so that transfer across
  corpora is harder than within one.

A file's audio depends only on the seed, the corpus, the duration range and the file's name
(and, in a small corpus without any stereo draw, on which file is made the one stereo file),
so the same arguments write byte-identical corpora. Beside the audio the generator writes
``SYNTHETIC.md`` (for people), ``synthetic.json`` (parameters), ``synthetic_files.csv`` (one row
per file) and ``bad_files.csv`` (the deliberately broken files and their kind).

Example:
    >>> files = synthesize_corpus("emodb", Path("resources/corpora/emodb/raw"),
    ...     n_speakers=10, utterances_per_speaker_label=3, seed=0)  # doctest: +SKIP
    >>> files["kind"].value_counts().to_dict()  # doctest: +SKIP
    {'ok': 210}
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from tqdm import tqdm

from serhpo.errors import UserError

log = logging.getLogger(__name__)

#: Corpus formats the generator writes: the built-in corpora's layouts, and a TESS-like
#: folder described by a CSV table (``table``) or by an audformat database (``audformat``).
FORMAT_NAMES: tuple[str, ...] = ("emodb", "ravdess", "cremad", "table", "audformat")

#: The layout each format is written in (the generic formats share a TESS-like one).
_FORMAT_LAYOUTS: dict[str, str] = {
    "emodb": "emodb",
    "ravdess": "ravdess",
    "cremad": "cremad",
    "table": "tess",
    "audformat": "tess",
}

#: The table a ``table`` corpus is described by (the default of ``corpora.<name>.table``).
TABLE_NAME = "table.csv"

#: Kinds of deliberately broken files (``bad_files=True`` writes one of each).
BAD_KINDS: tuple[str, ...] = ("empty", "truncated_header", "silent", "too_short", "not_audio")

#: Columns of the table :func:`synthesize_corpus` returns (and of ``synthetic_files.csv``,
#: where ``path`` is relative to the corpus folder).
FILE_COLUMNS: list[str] = [
    "path",
    "speaker",
    "gender",
    "sentence",
    "label",
    "code",
    "prototype",
    "intensity",
    "sample_rate",
    "channels",
    "duration_s",
    "kind",
]

MARKER_NAME = "synthetic.json"
_INTERNAL_RATE = 16000  # every signal is built at 16 kHz, then resampled to the corpus' rate
_HOP = 80  # control parameters are set every 5 ms and interpolated between
_FRAME_RATE = _INTERNAL_RATE // _HOP
_MAX_HARMONIC_HZ = 7000.0
_BASE_RMS_DBFS = -24.0
_BASE_TILT_DB_PER_OCTAVE = -6.0  # glottal source plus lip radiation
_GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Prosody:
    """How an emotion is spoken, relative to the speaker's own voice.

    Attributes:
        pitch_shift_st: f0 level, semitones above the speaker's.
        pitch_range_st: height of the accent peaks on stressed syllables, semitones.
        energy_db: level relative to the speaker's neutral level.
        tempo: syllable rate relative to the speaker's.
        tilt_db_per_octave: added to the source's spectral tilt (positive: brighter).
        jitter: relative standard deviation of f0 from cycle to cycle.
        shimmer: relative standard deviation of the amplitude from cycle to cycle.
        creak: strength of period doubling (0: none, 1: every other cycle silent).
        breathiness: aspiration noise added to the speaker's.
        final_st: f0 movement over the last syllable (positive: a question-like rise).
    """

    pitch_shift_st: float
    pitch_range_st: float
    energy_db: float
    tempo: float
    tilt_db_per_octave: float
    jitter: float
    shimmer: float
    creak: float
    breathiness: float
    final_st: float

    def scaled(self, intensity: float, *, neutral: Prosody) -> Prosody:
        """Return this prototype moved ``intensity`` times as far from ``neutral``."""
        mine, base = asdict(self), asdict(neutral)
        return Prosody(**{key: base[key] + intensity * (mine[key] - base[key]) for key in mine})


#: Emotion prototypes. Each corpus maps its own labels onto these names.
# fmt: off
PROTOTYPES: dict[str, Prosody] = {
    #                    shift range energy tempo  tilt  jitter shimmer creak breath final
    "neutral":   Prosody(0.0,  2.5,  0.0,  1.00,  0.0,  0.006, 0.04,  0.0,  0.00,  0.0),
    "anger":     Prosody(3.0,  4.0,  8.0,  1.15,  4.0,  0.010, 0.06,  0.0,  -0.05, 0.0),
    "boredom":   Prosody(-1.5, 1.0,  -3.0, 0.80,  -1.5, 0.006, 0.04,  0.1,  0.05,  -1.0),
    "disgust":   Prosody(-1.5, 3.0,  -1.0, 0.80,  -0.5, 0.012, 0.08,  0.6,  0.05,  -1.0),
    "fear":      Prosody(5.0,  3.0,  1.0,  1.25,  0.0,  0.025, 0.08,  0.0,  0.15,  1.0),
    "happiness": Prosody(4.0,  8.0,  3.0,  1.08,  1.5,  0.008, 0.05,  0.0,  0.00,  1.5),
    "sadness":   Prosody(-2.5, 1.2,  -6.0, 0.75,  -3.5, 0.010, 0.05,  0.15, 0.20,  -1.5),
    "calm":      Prosody(-0.5, 2.0,  -3.0, 0.92,  -1.5, 0.005, 0.035, 0.0,  0.10,  -0.5),
    "surprise":  Prosody(5.0,  9.0,  3.0,  1.05,  1.0,  0.010, 0.05,  0.0,  0.05,  5.0),
}
# fmt: on

#: Per-utterance standard deviation of each prosodic parameter (``*_rel``: relative).
_UTTERANCE_SPREAD = {
    "pitch_shift_st": 0.8,
    "pitch_range_rel": 0.2,
    "energy_db": 2.0,
    "tempo_rel": 0.06,
    "tilt_db_per_octave": 1.0,
    "jitter_rel": 0.2,
    "shimmer_rel": 0.2,
    "creak": 0.08,
    "breathiness": 0.04,
    "final_st": 0.8,
}

# Vowel formants F1-F4 (Hz) of an adult male voice; speakers scale them by tract length.
_VOWELS = np.array(
    [
        [270, 2290, 3010, 3700],  # i
        [530, 1840, 2480, 3500],  # e
        [730, 1090, 2440, 3400],  # a
        [570, 840, 2410, 3300],  # o
        [300, 870, 2240, 3300],  # u
        [660, 1720, 2410, 3500],  # ae
        [500, 1500, 2500, 3500],  # schwa
    ],
    dtype=float,
)
_BANDWIDTHS = np.array([70.0, 100.0, 140.0, 200.0])
# Consonant noise bands (Hz): none, /s/-like, /sh/-like, plosive burst.
_CONSONANT_BANDS = {1: (4000.0, 7500.0), 2: (2000.0, 5000.0), 3: (400.0, 6000.0)}


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker's voice."""

    speaker: str
    gender: str
    f0_hz: float
    formant_scale: float
    breathiness: float
    tilt_db_per_octave: float
    tempo: float
    expressiveness: float
    pitch_range_scale: float
    level_db: float


@dataclass(frozen=True)
class Channel:
    """A corpus' recording chain: an EQ curve and a coloured noise floor.

    Attributes:
        eq_points: (frequency Hz, gain dB) pairs, interpolated on a log-frequency axis.
        noise_dbfs: RMS of the noise floor.
        noise_tilt_db_per_octave: spectral slope of the noise floor.
    """

    eq_points: tuple[tuple[float, float], ...]
    noise_dbfs: float
    noise_tilt_db_per_octave: float


#: Fixed, deliberately different channels: a clean anechoic studio (EmoDB), a bright studio
#: with a low cut (RAVDESS), a noisier, duller room and microphone (CREMA-D).
CHANNELS: dict[str, Channel] = {
    "emodb": Channel(((50, 0.0), (1000, 0.0), (3000, 1.0), (8000, 2.0)), -68.0, 0.0),
    "ravdess": Channel(
        ((50, -20.0), (150, -6.0), (500, -2.0), (1000, 0.0), (3000, 6.0), (5000, 6.0), (8000, 2.0)),
        -72.0,
        -1.0,
    ),
    "cremad": Channel(
        (
            (50, 3.0),
            (300, 6.0),
            (1000, 0.0),
            (2500, -4.0),
            (4000, -10.0),
            (6000, -16.0),
            (8000, -22.0),
        ),
        -48.0,
        -3.0,
    ),
    "tess": Channel(((50, -8.0), (200, 0.0), (2000, 0.0), (5000, -2.0), (8000, -6.0)), -64.0, -2.0),
}

#: Standard deviations of a corpus' acting style: how its actors' prototypes differ from the
#: shared ones (like actors of another language and director), drawn once per corpus name.
_STYLE_SPREAD = {
    "pitch_shift_st": 1.0,
    "pitch_range_rel": 0.15,
    "energy_db": 1.5,
    "tempo_rel": 0.05,
    "tilt_db_per_octave": 1.0,
}


def corpus_prototypes(fmt: str) -> dict[str, Prosody]:
    """Return the emotion prototypes as the corpus ``fmt`` acts them.

    Every corpus moves the shared :data:`PROTOTYPES` by a small, fixed offset drawn from its
    name, so that a model trained on one corpus meets a slightly different acting style on
    another, as it does across real corpora.

    Example:
        >>> corpus_prototypes("emodb")["anger"] != PROTOTYPES["anger"]
        True
    """
    rng = np.random.default_rng([zlib.crc32(f"style:{fmt}".encode())])
    spread = _STYLE_SPREAD
    styled = {}
    for name, prosody in PROTOTYPES.items():
        normal = rng.normal(size=5)
        styled[name] = replace(
            prosody,
            pitch_shift_st=prosody.pitch_shift_st + spread["pitch_shift_st"] * normal[0],
            pitch_range_st=prosody.pitch_range_st
            * float(np.exp(spread["pitch_range_rel"] * normal[1])),
            energy_db=prosody.energy_db + spread["energy_db"] * normal[2],
            tempo=prosody.tempo * float(np.exp(spread["tempo_rel"] * normal[3])),
            tilt_db_per_octave=prosody.tilt_db_per_octave
            + spread["tilt_db_per_octave"] * normal[4],
        )
    return styled


@dataclass(frozen=True)
class _Sentence:
    vowels: np.ndarray  # (n_syllables,) index into _VOWELS
    consonants: np.ndarray  # (n_syllables,) 0 none, 1 s, 2 sh, 3 plosive
    weights: np.ndarray  # relative syllable durations
    stress: np.ndarray  # 0..1 accent strength
    speech_s: float  # neutral duration of the speech part


@dataclass(frozen=True)
class _Label:
    label: str  # the corpus' own label, as its reader reports it
    code: str  # the label's code in the file name
    prototype: str  # key of PROTOTYPES


@dataclass(frozen=True)
class _Slot:
    """One file name the corpus' convention allows for a speaker and a label."""

    path: str  # relative to the corpus folder
    sentence: str
    intensity: float


@dataclass(frozen=True)
class _Layout:
    name: str
    sample_rate: int
    labels: tuple[_Label, ...]
    speaker_table: tuple[tuple[str, str], ...]  # (speaker id, gender), in the order used
    slots: Callable[[str, int, _Label], Iterator[_Slot]]  # (speaker, label index, label)
    stereo_fraction: float = 0.0


# --- EmoDB -------------------------------------------------------------------------------------
_EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
_EMODB_SPEAKERS = (
    ("03", "male"),
    ("08", "female"),
    ("09", "female"),
    ("10", "male"),
    ("11", "male"),
    ("12", "male"),
    ("13", "female"),
    ("14", "female"),
    ("15", "male"),
    ("16", "female"),
)


def _emodb_slots(speaker: str, label_index: int, label: _Label) -> Iterator[_Slot]:
    # Rotate the texts so that speakers and labels do not all start with the same sentence.
    offset = (int(speaker) + 3 * label_index) % len(_EMODB_TEXTS)
    texts = _EMODB_TEXTS[offset:] + _EMODB_TEXTS[:offset]
    for version in "abcdefghijklmnopqrstuvwxyz":
        for text in texts:
            yield _Slot(f"wav/{speaker}{text}{label.code}{version}.wav", text, 1.0)


# --- RAVDESS -----------------------------------------------------------------------------------
_RAVDESS_INTENSITY = {"01": 1.0, "02": 1.6}  # 02 "strong": exaggerated


def _ravdess_slots(speaker: str, label_index: int, label: _Label) -> Iterator[_Slot]:
    intensities = ("01",) if label.label == "neutral" else ("01", "02")
    for repetition in ("01", "02"):
        for statement in ("01", "02"):
            for intensity in intensities:
                name = f"03-01-{label.code}-{intensity}-{statement}-{repetition}-{speaker}.wav"
                yield _Slot(f"Actor_{speaker}/{name}", statement, _RAVDESS_INTENSITY[intensity])


# --- CREMA-D -----------------------------------------------------------------------------------
_CREMAD_SENTENCES = (
    "IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI",
)  # fmt: skip
_CREMAD_LEVELS = {"LO": 0.6, "MD": 1.0, "HI": 1.4, "XX": 1.0}


def _cremad_slots(speaker: str, label_index: int, label: _Label) -> Iterator[_Slot]:
    offset = (int(speaker) + 5 * label_index) % len(_CREMAD_SENTENCES)
    sentences = _CREMAD_SENTENCES[offset:] + _CREMAD_SENTENCES[:offset]
    for sentence in sentences:
        # As in the release, only "IEO" was recorded at three levels, and never for neutral.
        levels = ("LO", "MD", "HI") if sentence == "IEO" and label.code != "NEU" else ("XX",)
        for level in levels:
            name = f"AudioWAV/{speaker}_{sentence}_{label.code}_{level}.wav"
            yield _Slot(name, sentence, _CREMAD_LEVELS[level])


def _cremad_speakers() -> tuple[tuple[str, str], ...]:
    # Alternate genders so that any first n actors are balanced (the release has 48 male, 43
    # female actors).
    return tuple((str(1001 + i), "male" if i % 2 == 0 else "female") for i in range(91))


# --- a TESS-like layout, for the generic formats -------------------------------------------------
# The Toronto emotional speech set: "Say the word ___" spoken by two actresses, one folder per
# speaker and emotion. Here with more speakers (both genders), so that a speaker split works.
_TESS_WORDS = (
    "back", "bar", "base", "bath", "bean", "beg", "bite", "boat", "bone", "book",
    "burn", "cab", "calm", "came", "cause", "chain", "chair", "chalk", "chat", "check",
)  # fmt: skip
_TESS_SPEAKERS = tuple(
    (f"{age}{group}{gender[0].upper()}", gender)
    for group in "ABC"
    for gender in ("female", "male")
    for age in "OY"
)


def _tess_slots(speaker: str, label_index: int, label: _Label) -> Iterator[_Slot]:
    offset = (zlib.crc32(speaker.encode()) + 3 * label_index) % len(_TESS_WORDS)
    for word in _TESS_WORDS[offset:] + _TESS_WORDS[:offset]:
        yield _Slot(f"{speaker}_{label.code}/{speaker}_{word}_{label.code}.wav", word, 1.0)


_LAYOUTS: dict[str, _Layout] = {
    "emodb": _Layout(
        name="emodb",
        sample_rate=16000,
        labels=(
            _Label("anger", "W", "anger"),
            _Label("boredom", "L", "boredom"),
            _Label("disgust", "E", "disgust"),
            _Label("fear", "A", "fear"),
            _Label("happiness", "F", "happiness"),
            _Label("sadness", "T", "sadness"),
            _Label("neutral", "N", "neutral"),
        ),
        speaker_table=_EMODB_SPEAKERS,
        slots=_emodb_slots,
    ),
    "ravdess": _Layout(
        name="ravdess",
        sample_rate=48000,
        labels=(
            _Label("neutral", "01", "neutral"),
            _Label("calm", "02", "calm"),
            _Label("happy", "03", "happiness"),
            _Label("sad", "04", "sadness"),
            _Label("angry", "05", "anger"),
            _Label("fearful", "06", "fear"),
            _Label("disgust", "07", "disgust"),
            _Label("surprised", "08", "surprise"),
        ),
        speaker_table=tuple(
            (f"{actor:02d}", "male" if actor % 2 else "female") for actor in range(1, 25)
        ),
        slots=_ravdess_slots,
        stereo_fraction=0.05,
    ),
    "cremad": _Layout(
        name="cremad",
        sample_rate=16000,
        labels=(
            _Label("anger", "ANG", "anger"),
            _Label("disgust", "DIS", "disgust"),
            _Label("fear", "FEA", "fear"),
            _Label("happy", "HAP", "happiness"),
            _Label("neutral", "NEU", "neutral"),
            _Label("sad", "SAD", "sadness"),
        ),
        speaker_table=_cremad_speakers(),
        slots=_cremad_slots,
    ),
    "tess": _Layout(
        name="tess",
        sample_rate=24414,
        labels=(
            _Label("angry", "angry", "anger"),
            _Label("disgust", "disgust", "disgust"),
            _Label("fear", "fear", "fear"),
            _Label("happy", "happy", "happiness"),
            _Label("neutral", "neutral", "neutral"),
            _Label("ps", "ps", "surprise"),  # pleasant surprise
            _Label("sad", "sad", "sadness"),
        ),
        speaker_table=_TESS_SPEAKERS,
        slots=_tess_slots,
    ),
}


def synthesize_corpus(
    fmt: str,
    out_dir: Path,
    *,
    n_speakers: int,
    utterances_per_speaker_label: int,
    seed: int,
    bad_files: bool = False,
    duration_s: tuple[float, float] = (1.5, 3.0),
    show_progress: bool = False,
) -> pd.DataFrame:
    """Write a synthetic corpus in the layout of a real one, replacing ``out_dir``.

    The corpus is written into a temporary sibling folder and renamed into place, so an
    interrupted run leaves no half corpus; an existing ``out_dir`` is replaced only when it
    holds an earlier synthetic corpus (its ``synthetic.json``) or nothing.

    Layouts: ``emodb`` writes ``wav/SSTTTEV.wav`` (16 kHz mono), official speaker ids in
    the order 03 08 09 10 11 12 13 14 15 16; ``ravdess`` writes
    ``Actor_AA/03-01-EE-II-SS-RR-AA.wav`` (48 kHz, about 5% of the files stereo with slightly
    different channels; neutral has no strong intensity, so at most 4 neutral files per
    actor); ``cremad`` writes ``AudioWAV/AAAA_SSS_EEE_LL.wav`` (16 kHz mono) and
    ``VideoDemographics.csv`` (at most 12 neutral files per actor); ``table`` and
    ``audformat`` write a TESS-like ``SSS_EMOTION/SSS_WORD_EMOTION.wav`` (24,414 Hz mono; labels
    angry, disgust, fear, happy, neutral, ps, sad; speakers OAF, YAF, OAM, ...) described by
    ``table.csv`` (columns file, speaker, emotion, gender, word) or by an audformat database
    (``db.yaml``: tables emotion and files, misc table speaker). All are 16-bit PCM.

    Args:
        fmt: ``emodb``, ``ravdess``, ``cremad``, ``table`` or ``audformat``.
        out_dir: the corpus folder to write.
        n_speakers: how many speakers (the first ones of the corpus' speaker table).
        utterances_per_speaker_label: files per speaker and label.
        seed: the seed; with the same arguments the files are byte-identical.
        bad_files: also write one broken file of each kind in :data:`BAD_KINDS`, under
            valid names, and list them in ``bad_files.csv``.
        duration_s: shortest and longest file duration of the good files, in seconds.
        show_progress: show a tqdm progress bar.

    Returns:
        One row per written file, columns :data:`FILE_COLUMNS` (``path`` absolute, ``kind``
        ``"ok"`` or one of :data:`BAD_KINDS`).

    Raises:
        UserError: an unknown format, counts out of the corpus' range, a bad duration range,
            or an ``out_dir`` that holds something other than a synthetic corpus.

    Example:
        >>> files = synthesize_corpus("ravdess", Path("/tmp/ravdess"), n_speakers=2,
        ...     utterances_per_speaker_label=2, seed=0, bad_files=True)  # doctest: +SKIP
        >>> sorted(files["kind"].unique())  # doctest: +SKIP
        ['empty', 'not_audio', 'ok', 'silent', 'too_short', 'truncated_header']
    """
    layout = _layout(fmt)
    _check_arguments(
        layout,
        n_speakers=n_speakers,
        per_label=utterances_per_speaker_label,
        seed=seed,
        duration_s=duration_s,
    )
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)

    corpus_key = zlib.crc32(layout.name.encode())
    speakers = [
        _draw_speaker(speaker, gender, seed=seed, corpus_key=corpus_key)
        for speaker, gender in layout.speaker_table[:n_speakers]
    ]
    plan = _plan_files(layout, speakers, per_label=utterances_per_speaker_label, bad=bad_files)
    stereo = _stereo_choice(plan, layout=layout, seed=seed, corpus_key=corpus_key)
    sentences: dict[str, _Sentence] = {}
    prototypes = corpus_prototypes(layout.name)

    partial = out_dir.parent / f".{out_dir.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted run
    partial.mkdir(parents=True)
    rows = []
    for index, (speaker, label, slot, kind) in enumerate(
        tqdm(
            plan,
            desc=f"synthesize {layout.name}",
            unit="file",
            mininterval=1.0,  # a readable log file
            disable=not show_progress,
        )
    ):
        rng = np.random.default_rng([seed, corpus_key, zlib.crc32(slot.path.encode())])
        channels = 2 if index in stereo else 1
        if kind == "ok":
            if slot.sentence not in sentences:
                sentences[slot.sentence] = _make_sentence(
                    slot.sentence, seed=seed, corpus_key=corpus_key, duration_s=duration_s
                )
            audio = _render(
                rng,
                speaker=speaker,
                prosody=_utterance_prosody(
                    rng, prototypes, label.prototype, slot.intensity, speaker
                ),
                sentence=sentences[slot.sentence],
                duration_s=duration_s,
                channel=CHANNELS[layout.name],
                sample_rate=layout.sample_rate,
                channels=channels,
            )
            _write_wav(partial / slot.path, audio, layout.sample_rate)
            duration = audio.shape[0] / layout.sample_rate
        else:
            duration = _write_bad_file(partial / slot.path, kind, rng=rng, layout=layout)
        rows.append(
            {
                "path": slot.path,
                "speaker": speaker.speaker,
                "gender": speaker.gender,
                "sentence": slot.sentence,
                "label": label.label,
                "code": label.code,
                "prototype": label.prototype,
                "intensity": slot.intensity,
                "sample_rate": layout.sample_rate,
                "channels": channels,
                "duration_s": round(duration, 4),
                "kind": kind,
            }
        )
    files = pd.DataFrame(rows, columns=FILE_COLUMNS)
    _write_source_table(partial, fmt=fmt, files=files)
    _write_metadata(
        partial,
        fmt=fmt,
        layout=layout,
        files=files,
        speakers=speakers,
        seed=seed,
        per_label=utterances_per_speaker_label,
        bad_files=bad_files,
        duration_s=duration_s,
    )
    _replace_folder(out_dir, partial)
    log.info(
        "wrote %d %s files (%d bad) of %d speakers to %s",
        len(files),
        layout.name,
        int((files["kind"] != "ok").sum()),
        n_speakers,
        out_dir,
    )
    files["path"] = [str(out_dir.resolve() / path) for path in files["path"]]
    return files


# --- planning ----------------------------------------------------------------------------------
def _layout(fmt: str) -> _Layout:
    try:
        return _LAYOUTS[_FORMAT_LAYOUTS[fmt]]
    except KeyError:
        raise UserError(
            f"unknown synthetic corpus format {fmt!r}; expected one of {list(FORMAT_NAMES)}."
        ) from None


def _check_arguments(
    layout: _Layout,
    *,
    n_speakers: int,
    per_label: int,
    seed: int,
    duration_s: tuple[float, float],
) -> None:
    most_speakers = len(layout.speaker_table)
    if not 1 <= n_speakers <= most_speakers:
        raise UserError(
            f"{layout.name} has speakers 1 to {most_speakers}, but {n_speakers} were asked for. "
            f"Choose a number of speakers in that range."
        )
    # The label with the most name slots bounds the request; labels with fewer (RAVDESS and
    # CREMA-D neutral) are capped, as in the real corpora.
    speaker = layout.speaker_table[0][0]
    most_files = max(
        sum(1 for _ in layout.slots(speaker, index, label))
        for index, label in enumerate(layout.labels)
    )
    if not 1 <= per_label <= most_files:
        raise UserError(
            f"{layout.name}'s naming allows 1 to {most_files} files per speaker and label, but "
            f"{per_label} were asked for. Lower the number, or add speakers instead."
        )
    if seed < 0:
        raise UserError(f"the seed must be a non-negative integer, not {seed}.")
    shortest, longest = duration_s
    if not 0.5 <= shortest <= longest:
        raise UserError(
            f"duration range {duration_s} is not (shortest, longest) with 0.5 <= shortest <= "
            "longest seconds. Give e.g. (1.5, 3.0)."
        )


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.is_file():
        raise UserError(f"{out_dir} is a file; expected a folder for the synthetic corpus.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER_NAME).is_file():
        raise UserError(
            f"{out_dir} holds files but no {MARKER_NAME}, so it is not a synthetic corpus and "
            "will not be replaced. Choose an empty or new folder, or remove this one."
        )


def _plan_files(
    layout: _Layout, speakers: list[Speaker], *, per_label: int, bad: bool
) -> list[tuple[Speaker, _Label, _Slot, str]]:
    plan = []
    free: dict[tuple[int, int], Iterator[_Slot]] = {}
    for s, speaker in enumerate(speakers):
        for index, label in enumerate(layout.labels):
            slots = layout.slots(speaker.speaker, index, label)
            for _, slot in zip(range(per_label), slots, strict=False):
                plan.append((speaker, label, slot, "ok"))
            free[s, index] = slots
    if bad:
        # Broken files take names no good file uses, spread over speakers and labels.
        pairs = list(free)
        for b, kind in enumerate(BAD_KINDS):
            for pair in pairs[b:] + pairs[:b]:
                slot = next(free[pair], None)
                if slot is not None:
                    plan.append((speakers[pair[0]], layout.labels[pair[1]], slot, kind))
                    break
            else:
                raise UserError(
                    f"every {layout.name} file name of these {len(speakers)} speakers is taken by "
                    f"a good file, so there is none left for the bad file of kind {kind!r}. "
                    "Lower the files per speaker and label, or add a speaker."
                )
    return plan


def _stereo_choice(
    plan: list[tuple[Speaker, _Label, _Slot, str]], *, layout: _Layout, seed: int, corpus_key: int
) -> set[int]:
    """Return the plan indices of the stereo files: a draw per file name, at least one."""
    if layout.stereo_fraction <= 0:
        return set()
    good = [i for i, (_, _, _, kind) in enumerate(plan) if kind == "ok"]
    draws = np.array(
        [
            np.random.default_rng(
                [seed, corpus_key, zlib.crc32(f"stereo:{plan[i][2].path}".encode())]
            ).random()
            for i in good
        ]
    )
    chosen = {good[j] for j in np.flatnonzero(draws < layout.stereo_fraction)}
    return chosen or {good[int(draws.argmin())]}


def _draw_speaker(speaker: str, gender: str, *, seed: int, corpus_key: int) -> Speaker:
    rng = np.random.default_rng([seed, corpus_key, zlib.crc32(f"speaker:{speaker}".encode())])
    male = gender == "male"
    return Speaker(
        speaker=speaker,
        gender=gender,
        f0_hz=float(rng.uniform(100, 140) if male else rng.uniform(180, 240)),
        formant_scale=float(rng.normal(1.0 if male else 1.16, 0.04)),
        breathiness=float(rng.uniform(0.05, 0.2) if male else rng.uniform(0.1, 0.3)),
        tilt_db_per_octave=float(rng.normal(0.0, 1.5)),
        tempo=float(rng.uniform(0.9, 1.1)),
        expressiveness=float(rng.uniform(0.8, 1.2)),
        pitch_range_scale=float(rng.uniform(0.8, 1.2)),
        level_db=float(rng.normal(0.0, 2.0)),
    )


def _make_sentence(
    code: str, *, seed: int, corpus_key: int, duration_s: tuple[float, float]
) -> _Sentence:
    rng = np.random.default_rng([seed, corpus_key, zlib.crc32(f"sentence:{code}".encode())])
    shortest, longest = duration_s
    # Leave room for silences and for slow emotions within the longest duration.
    speech_s = float(rng.uniform(0.55, 0.8) * (shortest + 0.35 * (longest - shortest)))
    n_syllables = max(3, round(speech_s * 4.5))
    stress = np.where(rng.random(n_syllables) < 0.35, rng.uniform(0.6, 1.0, n_syllables), 0.0)
    stress[rng.integers(n_syllables)] = 1.0  # every sentence has a nuclear accent
    return _Sentence(
        vowels=rng.integers(len(_VOWELS), size=n_syllables),
        consonants=rng.choice(4, size=n_syllables, p=[0.25, 0.3, 0.2, 0.25]),
        weights=rng.uniform(0.7, 1.3, n_syllables) * (1 + 0.3 * stress),
        stress=stress,
        speech_s=speech_s,
    )


def _utterance_prosody(
    rng: np.random.Generator,
    prototypes: dict[str, Prosody],
    prototype: str,
    intensity: float,
    speaker: Speaker,
) -> Prosody:
    # How strongly this utterance expresses its emotion varies around the label's intensity.
    strength = intensity * speaker.expressiveness * float(rng.lognormal(0.0, 0.2))
    base = prototypes[prototype].scaled(strength, neutral=prototypes["neutral"])
    spread = _UTTERANCE_SPREAD
    normal = rng.normal(size=10)
    return replace(
        base,
        pitch_shift_st=base.pitch_shift_st + spread["pitch_shift_st"] * normal[0],
        pitch_range_st=max(0.3, base.pitch_range_st * speaker.pitch_range_scale)
        * float(np.exp(spread["pitch_range_rel"] * normal[1])),
        energy_db=base.energy_db + spread["energy_db"] * normal[2],
        tempo=max(0.5, base.tempo * speaker.tempo) * float(np.exp(spread["tempo_rel"] * normal[3])),
        tilt_db_per_octave=base.tilt_db_per_octave
        + speaker.tilt_db_per_octave
        + spread["tilt_db_per_octave"] * normal[4],
        jitter=max(0.0, base.jitter) * float(np.exp(spread["jitter_rel"] * normal[5])),
        shimmer=max(0.0, base.shimmer) * float(np.exp(spread["shimmer_rel"] * normal[6])),
        creak=float(np.clip(base.creak + spread["creak"] * normal[7], 0.0, 0.9)),
        breathiness=max(
            0.0, base.breathiness + speaker.breathiness + spread["breathiness"] * normal[8]
        ),
        final_st=base.final_st + spread["final_st"] * normal[9],
    )


# --- signal ------------------------------------------------------------------------------------
def _render(
    rng: np.random.Generator,
    *,
    speaker: Speaker,
    prosody: Prosody,
    sentence: _Sentence,
    duration_s: tuple[float, float],
    channel: Channel,
    sample_rate: int,
    channels: int,
) -> np.ndarray:
    """Return one utterance, shape (samples,) or (samples, channels), float in [-1, 1]."""
    shortest, longest = duration_s
    pause_cap = 0.15 * longest  # short files keep most of their length for speech
    lead, trail = min(rng.uniform(0.1, 0.25), pause_cap), min(rng.uniform(0.1, 0.3), pause_cap)
    speech = sentence.speech_s / prosody.tempo
    total = min(max(lead + speech + trail, shortest), longest)
    speech = min(speech, total - lead - trail)
    n_frames = round(total * _FRAME_RATE) + 1  # control points; the samples lie between them
    n_samples = (n_frames - 1) * _HOP
    t = np.arange(n_frames) / _FRAME_RATE

    # Syllable timeline (frame rate).
    weights = sentence.weights * rng.lognormal(0.0, 0.1, sentence.weights.size)
    durations = weights / weights.sum() * speech
    starts = lead + np.concatenate(([0.0], np.cumsum(durations)[:-1]))
    syllable = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, durations.size - 1)
    in_speech = (t >= lead) & (t < lead + speech)
    position = np.clip((t - starts[syllable]) / durations[syllable], 0.0, 1.0)
    consonant_kind = np.where(in_speech, sentence.consonants[syllable], 0)
    onset = np.where(consonant_kind > 0, 0.3, 0.08)  # consonant part of the syllable
    vowel_phase = np.clip((position - onset) / (1 - onset), 0.0, 1.0)
    voiced = np.where(in_speech & (position >= onset), np.sin(np.pi * vowel_phase) ** 0.5, 0.0)
    consonant_env = np.where(
        in_speech & (position < onset), np.sin(np.pi * position / onset) ** 2, 0.0
    )

    # Formant tracks: the syllable's vowel, smoothed into transitions.
    formants = _VOWELS[sentence.vowels[syllable]].T * speaker.formant_scale
    formants *= rng.normal(1.0, 0.03, size=(4, 1))
    kernel = np.hanning(9) / np.hanning(9).sum()
    formants = np.stack([np.convolve(row, kernel, mode="same") for row in formants])
    formants[:, :4] = formants[:, [4]]  # the convolution's edges
    formants[:, -4:] = formants[:, [-5]]

    f0 = _f0_contour(
        rng,
        t,
        speaker=speaker,
        prosody=prosody,
        sentence=sentence,
        starts=starts,
        durations=durations,
        lead=lead,
        speech=speech,
    )

    # Harmonic amplitudes (frames): source tilt times the formant resonators' gain.
    n_harmonics = int(_MAX_HARMONIC_HZ // f0.min())
    k = np.arange(1, n_harmonics + 1)[:, None]
    frequencies = k * f0
    tilt = _BASE_TILT_DB_PER_OCTAVE + prosody.tilt_db_per_octave
    amplitude = k ** (tilt / 6.02) * np.ones_like(frequencies)
    for formant, bandwidth in zip(formants, _BANDWIDTHS * (1 + prosody.breathiness), strict=True):
        amplitude *= formant**2 / np.sqrt(
            (formant**2 - frequencies**2) ** 2 + (bandwidth * frequencies) ** 2
        )
    amplitude *= np.clip((_MAX_HARMONIC_HZ - frequencies) / 1000.0, 0.0, 1.0)  # no aliasing
    stress_gain = 1.0 + 0.4 * sentence.stress[syllable]
    shimmer = np.exp(prosody.shimmer * rng.standard_normal(n_frames))
    amplitude *= voiced * stress_gain * shimmer

    # To the sample rate: integrate f0 into a phase, add the harmonics with their amplitudes
    # interpolated linearly between control points (as (frame, sample in frame) arrays).
    weight = np.arange(_HOP) / _HOP

    def upsample(control: np.ndarray) -> np.ndarray:
        return (control[..., :-1, None] * (1 - weight) + control[..., 1:, None] * weight).reshape(
            *control.shape[:-1], n_samples
        )

    phase = 2 * np.pi * np.cumsum(upsample(f0)) / _INTERNAL_RATE + rng.uniform(0, 2 * np.pi)
    # float32 sines are several times faster; wrapping the phase first keeps them exact enough.
    wrapped = np.mod(phase, 2 * np.pi).astype(np.float32)
    sines = np.sin(k.astype(np.float32) * wrapped).reshape(n_harmonics, n_frames - 1, _HOP)
    from_left = np.einsum("kf,kfh->fh", amplitude[:, :-1].astype(np.float32), sines)
    from_right = np.einsum("kf,kfh->fh", amplitude[:, 1:].astype(np.float32), sines)
    voice = (from_left * (1 - weight) + from_right * weight).reshape(n_samples).astype(float)
    if prosody.creak > 0:
        # Period doubling: every other glottal cycle weaker, heard as creak.
        voice *= 1.0 - prosody.creak * 0.5 * (1.0 + np.cos(phase / 2.0))
    voiced_s = upsample(voiced)
    speaking = voiced_s > 0.5

    # Noise: aspiration pulsed with the glottal cycle, and consonants in their bands.
    size = _fast_length(n_samples)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1.0 / _INTERNAL_RATE)
    # Aspiration: above 500 Hz, falling 6 dB per octave above 2 kHz like the voice's spectrum.
    aspiration_gain = np.clip((freqs - 500) / 1500, 0, 1) * 2000 / np.maximum(freqs, 2000)
    aspiration = np.fft.irfft(spectrum * aspiration_gain, size)[:n_samples]
    aspiration /= np.sqrt(np.mean(aspiration**2))
    voice_rms = np.sqrt(np.mean(voice[speaking] ** 2)) if speaking.any() else 1.0
    signal = voice + 0.5 * prosody.breathiness * voice_rms * voiced_s * aspiration * (
        0.6 + 0.4 * np.cos(phase)
    )
    for kind, (low, high) in _CONSONANT_BANDS.items():
        envelope = np.where(consonant_kind == kind, consonant_env, 0.0)
        if not envelope.any():
            continue
        band = np.fft.irfft(spectrum * ((freqs >= low) & (freqs <= high)), size)[:n_samples]
        band /= np.sqrt(np.mean(band**2))
        level = 0.35 if kind < 3 else 0.5
        signal += level * voice_rms * upsample(envelope) * band

    # Level: the speaker's, the emotion's and a recording gain that varies per utterance.
    speech_rms = np.sqrt(np.mean(signal[speaking] ** 2)) if speaking.any() else 1.0
    level_db = _BASE_RMS_DBFS + speaker.level_db + prosody.energy_db + rng.normal(0.0, 2.0)
    signal *= 10 ** (level_db / 20) / speech_rms

    return _through_channel(
        rng, signal, channel=channel, sample_rate=sample_rate, channels=channels
    )


def _f0_contour(
    rng: np.random.Generator,
    t: np.ndarray,
    *,
    speaker: Speaker,
    prosody: Prosody,
    sentence: _Sentence,
    starts: np.ndarray,
    durations: np.ndarray,
    lead: float,
    speech: float,
) -> np.ndarray:
    """Return f0 (Hz) at the frame times ``t``.

    Semitones relative to the speaker: the emotion's level, a declination, accent peaks on
    stressed syllables, a final movement, a slow wander, then cycle-to-cycle jitter.
    """
    progress = np.clip((t - lead) / speech, 0.0, 1.0)
    centres = starts + durations * 0.55
    widths = durations * 0.35
    bumps = np.exp(-0.5 * ((t - centres[:, None]) / widths[:, None]) ** 2)
    accents = (sentence.stress[:, None] * bumps).sum(axis=0)
    final = np.clip((t - starts[-1]) / durations[-1], 0.0, 1.0) ** 2
    knots = np.arange(0.0, t[-1] + 0.2, 0.1)
    wander = np.interp(t, knots, rng.normal(0.0, 0.5, knots.size))
    semitones = (
        prosody.pitch_shift_st
        - 2.0 * progress
        + prosody.pitch_range_st * accents
        + prosody.final_st * final
        + wander
    )
    f0 = speaker.f0_hz * 2.0 ** (semitones / 12.0)
    return f0 * (1.0 + prosody.jitter * rng.standard_normal(t.size))


def _through_channel(
    rng: np.random.Generator,
    signal: np.ndarray,
    *,
    channel: Channel,
    sample_rate: int,
    channels: int,
) -> np.ndarray:
    """Colour a 16 kHz signal with the corpus' channel and record it at its rate and channels."""
    signal = _apply_eq(signal, channel.eq_points, _INTERNAL_RATE)
    if sample_rate != _INTERNAL_RATE:
        signal = soxr.resample(signal, _INTERNAL_RATE, sample_rate, quality="HQ")
    signal = signal + _coloured_noise(rng, signal.size, channel=channel, sample_rate=sample_rate)
    if channels == 2:
        # Two microphone channels of one source: slightly different gain and noise.
        other = signal * rng.uniform(0.96, 0.995) + _coloured_noise(
            rng, signal.size, channel=channel, sample_rate=sample_rate
        )
        signal = np.stack([signal, other], axis=1)
    peak = np.max(np.abs(signal))
    if peak > 0.98:
        signal *= 0.98 / peak  # a careful recording engineer: no clipping
    return signal


def _fast_length(size: int) -> int:
    """Return the smallest 2^a 3^b 5^c >= size (FFTs of prime-ish sizes are slow)."""
    best = 2 ** int(np.ceil(np.log2(size)))
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35 * 2 ** max(0, int(np.ceil(np.log2(size / power35))))
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def _apply_eq(signal: np.ndarray, points: tuple[tuple[float, float], ...], rate: int) -> np.ndarray:
    # Zero-padding to a fast length also keeps the filter's tail from wrapping around.
    size = _fast_length(signal.size + rate // 50)
    spectrum = np.fft.rfft(signal, size)
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    point_hz, point_db = np.array(points).T
    gain_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(point_hz), point_db)
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), size)[: signal.size]


def _coloured_noise(
    rng: np.random.Generator, size: int, *, channel: Channel, sample_rate: int
) -> np.ndarray:
    fast = _fast_length(size)
    spectrum = np.fft.rfft(rng.standard_normal(fast))
    freqs = np.fft.rfftfreq(fast, 1.0 / sample_rate)
    octaves = np.log2(np.maximum(freqs, 50.0) / 1000.0)
    gain = 10 ** (channel.noise_tilt_db_per_octave * octaves / 20)
    noise = np.fft.irfft(spectrum * gain, fast)[:size]
    return noise * 10 ** (channel.noise_dbfs / 20) / np.sqrt(np.mean(noise**2))


# --- files -------------------------------------------------------------------------------------
def _to_pcm16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _to_pcm16(audio), sample_rate, subtype="PCM_16", format="WAV")


def _write_bad_file(path: Path, kind: str, *, rng: np.random.Generator, layout: _Layout) -> float:
    """Write one broken file; return its nominal duration in seconds (0 if it has none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = layout.sample_rate
    if kind == "empty":
        path.write_bytes(b"")
        return 0.0
    if kind == "truncated_header":
        buffer = io.BytesIO()
        sf.write(buffer, np.zeros(rate, np.int16), rate, subtype="PCM_16", format="WAV")
        path.write_bytes(buffer.getvalue()[:20])
        return 0.0
    if kind == "silent":
        _write_wav(path, np.zeros(2 * rate), rate)
        return 2.0
    if kind == "too_short":
        seconds = 0.1
        tone = 0.1 * np.sin(2 * np.pi * 150.0 * np.arange(round(seconds * rate)) / rate)
        _write_wav(path, tone * np.hanning(tone.size) + 1e-3 * rng.standard_normal(tone.size), rate)
        return seconds
    if kind == "not_audio":
        path.write_bytes(b"This is not audio: a text file named like a corpus recording.\n" * 20)
        return 0.0
    raise AssertionError(f"unknown bad file kind {kind!r}")


def _write_source_table(folder: Path, *, fmt: str, files: pd.DataFrame) -> None:
    """Describe a generic-format corpus' files: ``table.csv``, or an audformat database."""
    if fmt not in ("table", "audformat"):
        return
    table = pd.DataFrame(
        {
            "file": files["path"],
            "speaker": files["speaker"],
            "emotion": files["label"],
            "gender": files["gender"],
            "word": files["sentence"],
        }
    )
    if fmt == "table":
        table.to_csv(folder / TABLE_NAME, index=False)
    else:
        from serhpo.corpora.audformat_source import write_database

        write_database(
            table, folder, name="synthetic-tess", description="serhpo's synthetic corpus"
        )


def _write_metadata(
    folder: Path,
    *,
    fmt: str,
    layout: _Layout,
    files: pd.DataFrame,
    speakers: list[Speaker],
    seed: int,
    per_label: int,
    bad_files: bool,
    duration_s: tuple[float, float],
) -> None:
    files.to_csv(folder / "synthetic_files.csv", index=False)
    bad = files.loc[files["kind"] != "ok", ["path", "kind"]].rename(columns={"path": "name"})
    bad.to_csv(folder / "bad_files.csv", index=False)
    if layout.name == "cremad":
        _write_demographics(folder / "VideoDemographics.csv", speakers, seed=seed)
    description = {
        "synthetic": True,
        "generator": "serhpo.corpora.synthetic",
        "generator_version": _GENERATOR_VERSION,
        "format": fmt,
        "layout": layout.name,
        "seed": seed,
        "n_speakers": len(speakers),
        "utterances_per_speaker_label": per_label,
        "bad_files": bad_files,
        "duration_s": list(duration_s),
        "sample_rate": layout.sample_rate,
        "n_files": len(files),
        "label_counts": files.loc[files["kind"] == "ok", "label"]
        .value_counts()
        .sort_index()
        .to_dict(),
        "labels": [asdict(label) for label in layout.labels],
        "speakers": [asdict(speaker) for speaker in speakers],
        "channel": asdict(CHANNELS[layout.name]),
        "prototypes": {
            name: asdict(prosody) for name, prosody in corpus_prototypes(layout.name).items()
        },
        "utterance_spread": _UTTERANCE_SPREAD,
    }
    (folder / MARKER_NAME).write_text(json.dumps(description, indent=2) + "\n")
    (folder / "SYNTHETIC.md").write_text(
        f"# Synthetic {layout.name} corpus\n\n"
        "These recordings are NOT speech: a source-filter synthesiser (serhpo.corpora.synthetic)\n"
        f"wrote them in {layout.name}'s file naming, folder layout and audio format so that the\n"
        "pipeline can be run and tested offline. Emotions are prosodic prototypes (pitch level\n"
        "and range, energy, tempo, spectral tilt, jitter, shimmer, creak) varied per utterance;\n"
        "results on this corpus say nothing about real speech emotion recognition.\n\n"
        f"- seed {seed}; {len(speakers)} speakers; {per_label} files per speaker and label\n"
        f"- {len(files)} files, {int((files['kind'] != 'ok').sum())} of them deliberately broken "
        "(listed in bad_files.csv)\n"
        f"- {duration_s[0]}-{duration_s[1]} s, {layout.sample_rate} Hz, 16-bit PCM\n"
        f"- every parameter: {MARKER_NAME}; every file: synthetic_files.csv\n"
    )


def _write_demographics(path: Path, speakers: list[Speaker], *, seed: int) -> None:
    rng = np.random.default_rng([seed, zlib.crc32(b"cremad-demographics")])
    races = ["Caucasian", "African American", "Asian", "Unknown"]
    pd.DataFrame(
        {
            "ActorID": [int(speaker.speaker) for speaker in speakers],
            "Age": rng.integers(20, 75, len(speakers)),
            "Sex": ["Male" if speaker.gender == "male" else "Female" for speaker in speakers],
            "Race": rng.choice(races, len(speakers), p=[0.6, 0.25, 0.1, 0.05]),
            "Ethnicity": rng.choice(["Not Hispanic", "Hispanic"], len(speakers), p=[0.9, 0.1]),
        }
    ).to_csv(path, index=False)


def _replace_folder(target: Path, partial: Path) -> None:
    old = target.parent / f".{target.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    partial.rename(target)
    if old.exists():
        shutil.rmtree(old)


# --- command line ------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``serhpo synthesize``'s options."""
    parser.add_argument("--format", required=True, choices=FORMAT_NAMES, help="corpus layout")
    parser.add_argument("--out", required=True, type=Path, help="corpus folder (replaced)")
    parser.add_argument("--speakers", type=int, default=4, help="number of speakers (default 4)")
    parser.add_argument(
        "--per-speaker-label", type=int, default=3, help="files per speaker and label (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--bad-files", action="store_true", help=f"also write one file of each kind {BAD_KINDS}"
    )
    parser.add_argument(
        "--duration",
        type=float,
        nargs=2,
        default=(1.5, 3.0),
        metavar=("MIN_S", "MAX_S"),
        help="duration range of the good files in seconds (default 1.5 3.0)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the corpus that ``args`` describes; return 0."""
    files = synthesize_corpus(
        args.format,
        args.out,
        n_speakers=args.speakers,
        utterances_per_speaker_label=args.per_speaker_label,
        seed=args.seed,
        bad_files=args.bad_files,
        duration_s=tuple(args.duration),
        show_progress=True,
    )
    print(
        f"wrote {len(files)} {args.format} files ({int((files['kind'] != 'ok').sum())} bad) "
        f"to {args.out}"
    )
    return 0
