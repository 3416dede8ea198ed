"""Tests of the synthetic corpus generator: layout, audio format, reproducibility, bad files,
and that its emotions are learnable across speakers but harder to transfer across corpora."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from serhpo.cli import main
from serhpo.corpora import get_format
from serhpo.corpora.synthetic import BAD_KINDS, FILE_COLUMNS, synthesize_corpus
from serhpo.errors import UserError

NAME_PATTERNS = {
    "emodb": re.compile(
        r"wav/(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<code>[WLEAFTN])(?P<version>[a-z])\.wav"
    ),
    "ravdess": re.compile(
        r"Actor_(?P<actor>\d\d)/03-01-(?P<code>0[1-8])-(?P<intensity>0[12])-(?P<text>0[12])"
        r"-(?P<repetition>0[12])-(?P<speaker>\d\d)\.wav"
    ),
    "cremad": re.compile(
        r"AudioWAV/(?P<speaker>1\d\d\d)_(?P<text>IEO|TIE|IOM|IWW|TAI|MTI|IWL|ITH|DFA|ITS|TSI|WSI)"
        r"_(?P<code>ANG|DIS|FEA|HAP|NEU|SAD)_(?P<level>LO|MD|HI|XX)\.wav"
    ),
}
SAMPLE_RATES = {"emodb": 16000, "ravdess": 48000, "cremad": 16000}
SHARED_LABELS = ["anger", "disgust", "fear", "happiness", "sadness", "neutral"]


def relative(files: pd.DataFrame, root: Path) -> list[str]:
    return [Path(path).relative_to(root.resolve()).as_posix() for path in files["path"]]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, pd.DataFrame]]:
    """One corpus per format, seed 0, with bad files; EmoDB with all 10 speakers."""
    made = {}
    for fmt, speakers in (("emodb", 10), ("ravdess", 4), ("cremad", 4)):
        root = tmp_path_factory.mktemp("synthetic") / fmt
        files = synthesize_corpus(
            fmt, root, n_speakers=speakers, utterances_per_speaker_label=3, seed=0, bad_files=True
        )
        made[fmt] = (root, files)
    return made


# --- layout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["emodb", "ravdess", "cremad"])
def test_every_file_is_named_as_the_corpus_names_it(corpora, fmt):
    root, files = corpora[fmt]
    names = relative(files, root)
    assert all(NAME_PATTERNS[fmt].fullmatch(name) for name in names), names[:3]
    assert len(set(names)) == len(names)
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))
    assert on_disk == sorted(names)
    # Bad files use names the good ones do not, and the same convention.
    assert list(files.columns) == FILE_COLUMNS
    assert sorted(files.loc[files["kind"] != "ok", "kind"]) == sorted(BAD_KINDS)


@pytest.mark.parametrize("fmt", ["emodb", "ravdess", "cremad"])
def test_the_corpus_reader_parses_every_file_with_its_speaker_and_label(corpora, fmt):
    root, files = corpora[fmt]
    listing = get_format(fmt).list_utterances(root)
    assert listing.unparsed.empty
    parsed = listing.utterances.set_index(
        listing.utterances["source_path"].map(lambda p: Path(p).resolve().as_posix())
    )
    ours = files.set_index(files["path"].map(lambda p: Path(p).resolve().as_posix()))
    assert sorted(parsed.index) == sorted(ours.index)
    joined = ours.merge(parsed, left_index=True, right_index=True, suffixes=("", "_reader"))
    assert (joined["speaker"] == joined["speaker_reader"]).all()
    assert (joined["gender"] == joined["gender_reader"]).all()
    assert (joined["label"] == joined["original_label"]).all()
    assert (joined["sentence"].str.lower() == joined["sentence_reader"].str.lower()).all()
    assert set(files["label"]) == set(get_format(fmt).labels)


@pytest.mark.parametrize("fmt", ["table", "audformat"])
def test_a_generic_format_is_a_tess_like_folder_its_table_describes(tmp_path, fmt):
    root = tmp_path / fmt
    files = synthesize_corpus(
        fmt, root, n_speakers=3, utterances_per_speaker_label=1, seed=0, bad_files=True,
        duration_s=(0.5, 0.6),
    )  # fmt: skip
    assert (root / ("table.csv" if fmt == "table" else "db.yaml")).is_file()
    assert set(files["speaker"]) == {"OAF", "YAF", "OAM"}
    good = files.query("kind == 'ok'")["path"]
    assert {sf.info(p).samplerate for p in good} == {24414}
    listing = get_format(fmt, {}, corpus="tess").list_utterances(root)
    assert listing.rejected.empty and len(listing.utterances) == len(files) == 21 + len(BAD_KINDS)
    assert listing.labels == ("angry", "disgust", "fear", "happy", "neutral", "ps", "sad")
    ours = files.set_index(files["path"].map(lambda p: Path(p).resolve().as_posix()))
    read = listing.utterances.set_index(
        listing.utterances["source_path"].map(lambda p: Path(p).resolve().as_posix())
    ).loc[ours.index]
    assert (read["speaker"] == ours["speaker"]).all() and (read["gender"] == ours["gender"]).all()
    assert (read["original_label"] == ours["label"]).all() and (
        read["word"] == ours["sentence"]
    ).all()


def test_speakers_are_the_official_ones_with_their_genders(corpora):
    emodb = corpora["emodb"][1]
    genders = emodb.groupby("speaker")["gender"].first().to_dict()
    assert genders == {
        **dict.fromkeys(["03", "10", "11", "12", "15"], "male"),
        **dict.fromkeys(["08", "09", "13", "14", "16"], "female"),
    }
    ravdess = corpora["ravdess"][1]
    assert ravdess.groupby("speaker")["gender"].first().to_dict() == {
        "01": "male",
        "02": "female",
        "03": "male",
        "04": "female",
    }
    root, cremad = corpora["cremad"]
    demographics = pd.read_csv(root / "VideoDemographics.csv")
    assert list(demographics.columns) == ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
    assert demographics["ActorID"].tolist() == [1001, 1002, 1003, 1004]
    sexes = dict(zip(demographics["ActorID"].astype(str), demographics["Sex"], strict=True))
    assert {
        s: g.capitalize() for s, g in cremad.groupby("speaker")["gender"].first().items()
    } == sexes


def test_counts_follow_each_corpus_naming_limits(corpora, tmp_path):
    emodb = corpora["emodb"][1].query("kind == 'ok'")
    assert (emodb.groupby(["speaker", "label"]).size() == 3).all()
    assert len(emodb) == 10 * 7 * 3
    # RAVDESS neutral has no strong intensity: 4 names per actor at most.
    files = synthesize_corpus(
        "ravdess", tmp_path / "r", n_speakers=1, utterances_per_speaker_label=6, seed=0
    )
    counts = files.groupby("label").size()
    assert counts["neutral"] == 4 and (counts.drop("neutral") == 6).all()
    assert set(files["intensity"]) == {1.0, 1.6}


# --- audio -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["emodb", "ravdess", "cremad"])
def test_audio_has_the_corpus_rate_channels_and_durations(corpora, fmt):
    _, files = corpora[fmt]
    good = files.query("kind == 'ok'")
    channels = []
    for path in good["path"]:
        info = sf.info(path)
        assert (info.samplerate, info.subtype, info.format) == (SAMPLE_RATES[fmt], "PCM_16", "WAV")
        assert 1.5 <= info.duration <= 3.0 + 1e-3
        channels.append(info.channels)
    assert channels == good["channels"].tolist()
    if fmt == "ravdess":
        # About 5% stereo, as in the release; the two channels are close but not identical.
        assert 1 <= channels.count(2) <= 0.1 * len(channels) + 1
        stereo, _ = sf.read(good.loc[good["channels"] == 2, "path"].iloc[0])
        assert np.corrcoef(stereo[:, 0], stereo[:, 1])[0, 1] > 0.99
        assert not np.array_equal(stereo[:, 0], stereo[:, 1])
    else:
        assert set(channels) == {1}


def test_emotions_change_loudness_pitch_and_tempo_as_designed(corpora):
    files = corpora["emodb"][1].query("kind == 'ok'")
    stats = pd.DataFrame(
        [_loudness_pitch(path) for path in files["path"]], columns=["rms_db", "f0", "speech_s"]
    )
    by_label = stats.groupby(files["label"].to_numpy()).median()
    assert by_label.loc["anger", "rms_db"] > by_label.loc["neutral", "rms_db"] + 3
    assert by_label.loc["sadness", "rms_db"] < by_label.loc["neutral", "rms_db"] - 3
    assert by_label.loc["fear", "f0"] > by_label.loc["sadness", "f0"] * 1.2
    assert by_label.loc["sadness", "speech_s"] > by_label.loc["fear", "speech_s"] * 1.2


# --- reproducibility and replacement ------------------------------------------------------------
def _wav_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


def test_the_same_seed_writes_byte_identical_files_and_another_seed_does_not(tmp_path):
    options = {"n_speakers": 2, "utterances_per_speaker_label": 1, "bad_files": True}
    synthesize_corpus("ravdess", tmp_path / "a", seed=5, **options)
    synthesize_corpus("ravdess", tmp_path / "b", seed=5, **options)
    synthesize_corpus("ravdess", tmp_path / "c", seed=6, **options)
    first, second, other = (_wav_bytes(tmp_path / name) for name in "abc")
    assert first == second
    assert (tmp_path / "a" / "synthetic.json").read_text() == (
        tmp_path / "b" / "synthetic.json"
    ).read_text()
    assert first.keys() == other.keys()
    good = pd.read_csv(tmp_path / "a" / "synthetic_files.csv").query("kind == 'ok'")["path"]
    assert all(first[name] != other[name] for name in good)


def test_rerunning_replaces_the_corpus_cleanly(tmp_path):
    out = tmp_path / "corpus"
    synthesize_corpus("emodb", out, n_speakers=3, utterances_per_speaker_label=2, seed=0)
    files = synthesize_corpus("emodb", out, n_speakers=2, utterances_per_speaker_label=1, seed=0)
    assert sorted(_wav_bytes(out)) == sorted(relative(files, out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no partial or old copy
    assert json.loads((out / "synthetic.json").read_text())["n_speakers"] == 2
    assert "NOT speech" in (out / "SYNTHETIC.md").read_text()


def test_a_folder_that_is_not_a_synthetic_corpus_is_never_replaced(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "03a01Fa.wav").write_bytes(b"real data")
    with pytest.raises(UserError, match="not a synthetic corpus"):
        synthesize_corpus("emodb", precious, n_speakers=1, utterances_per_speaker_label=1, seed=0)
    assert (precious / "03a01Fa.wav").read_bytes() == b"real data"


@pytest.mark.parametrize(
    ("fmt", "options", "message"),
    [
        ("timit", {}, "unknown synthetic corpus format"),
        ("emodb", {"n_speakers": 11}, "speakers 1 to 10"),
        ("ravdess", {"utterances_per_speaker_label": 9}, "1 to 8 files per speaker and label"),
        ("emodb", {"duration_s": (3.0, 2.0)}, "duration range"),
        ("emodb", {"seed": -1}, "non-negative"),
    ],
)
def test_bad_arguments_say_what_is_allowed(tmp_path, fmt, options, message):
    arguments = {"n_speakers": 2, "utterances_per_speaker_label": 1, "seed": 0} | options
    with pytest.raises(UserError, match=message):
        synthesize_corpus(fmt, tmp_path / "x", **arguments)
    assert not (tmp_path / "x").exists()


# --- bad files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["emodb", "ravdess", "cremad"])
def test_bad_files_are_written_as_asked_and_recorded(corpora, fmt):
    root, files = corpora[fmt]
    recorded = pd.read_csv(root / "bad_files.csv")
    bad = files.query("kind != 'ok'")
    assert sorted(zip(recorded["name"], recorded["kind"], strict=True)) == sorted(
        zip(relative(bad, root), bad["kind"], strict=True)
    )
    path = {kind: Path(p) for kind, p in zip(bad["kind"], bad["path"], strict=True)}
    assert path["empty"].stat().st_size == 0
    assert path["truncated_header"].read_bytes()[:4] == b"RIFF"
    assert path["truncated_header"].stat().st_size == 20
    for kind in ("empty", "truncated_header", "not_audio"):
        with pytest.raises(sf.LibsndfileError):
            sf.read(path[kind])
    silent, rate = sf.read(path["silent"])
    assert rate == SAMPLE_RATES[fmt] and silent.shape[0] >= 1.5 * rate and not silent.any()
    short, rate = sf.read(path["too_short"])
    assert short.shape[0] / rate == pytest.approx(0.1) and np.abs(short).max() > 0.01


# --- learnability ------------------------------------------------------------------------------
def _loudness_pitch(path: str) -> tuple[float, float, float]:
    audio = _mono16k(path)
    frames = np.lib.stride_tricks.sliding_window_view(audio, 400)[::160]
    energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    speech = energy_db > energy_db.max() - 25
    f0 = 2 ** _log2_f0(audio)
    return float(np.mean(energy_db[speech])), float(np.median(f0)), float(speech.sum() / 100)


def _mono16k(path: str) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(axis=1), rate, 16000)


def _log2_f0(audio: np.ndarray, rate: int = 16000) -> np.ndarray:
    """Autocorrelation f0 (log2 Hz) of the clearly periodic 40 ms frames."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, 640)[::160]
    frames = frames - frames.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(frames * np.hanning(640), 1280)) ** 2
    autocorrelation = np.fft.irfft(power, 1280)[:, :640]
    shortest, longest = rate // 500, rate // 70
    lag = shortest + autocorrelation[:, shortest:longest].argmax(axis=1)
    periodicity = autocorrelation[np.arange(len(lag)), lag] / np.maximum(
        autocorrelation[:, 0], 1e-12
    )
    voiced = periodicity > 0.5
    return np.log2(rate / lag[voiced]) if voiced.sum() > 2 else np.full(3, 7.0)


@pytest.fixture(scope="module")
def mel_filters() -> np.ndarray:
    torchaudio = pytest.importorskip("torchaudio")
    return torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, 40, 16000).numpy()


def _features(path: str, mel_filters: np.ndarray) -> np.ndarray:
    """Utterance statistics: log-Mel band means and spreads, loudness, f0 level and range."""
    audio = _mono16k(path)
    frames = np.lib.stride_tricks.sliding_window_view(audio, 400)[::160] * np.hanning(400)
    log_mel = np.log(np.abs(np.fft.rfft(frames, axis=1)) ** 2 @ mel_filters + 1e-8).T
    loudness = log_mel.max(axis=0)
    speech = loudness > loudness.max() - 6
    log_f0 = _log2_f0(audio)
    return np.concatenate(
        [
            log_mel[:, speech].mean(axis=1),
            log_mel[:, speech].std(axis=1),
            [
                loudness[speech].mean(),
                loudness[speech].std(),
                speech.mean(),
                audio.size / 16000,
                np.median(log_f0),
                np.percentile(log_f0, 90) - np.percentile(log_f0, 10),
                np.abs(np.diff(log_mel, axis=1)).mean(),
            ],
        ]
    )


def _classifier():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))


@pytest.fixture(scope="module")
def emodb_scores(corpora, mel_filters) -> dict[str, object]:
    """Speaker-independent predictions on synthetic EmoDB (5 folds of 2 held-out speakers)."""
    from sklearn.model_selection import GroupKFold, cross_val_predict

    files = corpora["emodb"][1].query("kind == 'ok'")
    features = np.stack([_features(path, mel_filters) for path in files["path"]])
    labels = files["label"].to_numpy()
    predicted = cross_val_predict(
        _classifier(), features, labels, groups=files["speaker"], cv=GroupKFold(n_splits=5)
    )
    return {"features": features, "labels": labels, "predicted": predicted}


def test_emotions_are_learnable_across_speakers_but_not_trivially(emodb_scores):
    from sklearn.metrics import balanced_accuracy_score

    score = balanced_accuracy_score(emodb_scores["labels"], emodb_scores["predicted"])
    # Balanced accuracy over the 7 labels, pooled over the 5 folds. Measured 0.729 with seed 0
    # (seeds 0-5: 0.63-0.78); chance is 1/7 = 0.14.
    assert 0.6 < score < 0.95


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # boredom
def test_a_model_of_synthetic_emodb_transfers_worse_to_the_other_corpora(
    corpora, emodb_scores, mel_filters
):
    from sklearn.metrics import balanced_accuracy_score

    labels, predicted = emodb_scores["labels"], emodb_scores["predicted"]
    shared = np.isin(labels, SHARED_LABELS)
    in_corpus = balanced_accuracy_score(labels[shared], predicted[shared])
    model = _classifier().fit(emodb_scores["features"], labels)
    for fmt in ("ravdess", "cremad"):
        files = corpora[fmt][1].query("kind == 'ok' and prototype != 'surprise'")
        target = files["prototype"].replace({"calm": "neutral"}).to_numpy()
        features = np.stack([_features(path, mel_filters) for path in files["path"]])
        cross = balanced_accuracy_score(target, model.predict(features))
        # Balanced accuracy on the six labels the corpora share (RAVDESS calm as neutral,
        # surprised left out). Measured with seed 0: in-corpus 0.767 (speaker-independent),
        # RAVDESS 0.535, CREMA-D 0.375 (seeds 0-5: in-corpus 0.67-0.81, RAVDESS 0.50-0.66,
        # CREMA-D 0.17-0.47; chance 1/6 = 0.17).
        assert cross < in_corpus - 0.1, (fmt, cross, in_corpus)


def test_corpora_draw_their_own_speakers_and_channel(corpora):
    def description(fmt):
        return json.loads((corpora[fmt][0] / "synthetic.json").read_text())

    emodb, cremad = description("emodb"), description("cremad")
    assert emodb["channel"] != cremad["channel"]
    first_f0 = {d["format"]: [s["f0_hz"] for s in d["speakers"][:4]] for d in (emodb, cremad)}
    assert not np.allclose(first_f0["emodb"], first_f0["cremad"])

    # CREMA-D's duller microphone: less energy above 4 kHz relative to 0.5-2 kHz than EmoDB.
    def high_to_mid_db(fmt):
        ratios = []
        for path in corpora[fmt][1].query("kind == 'ok'")["path"][:20]:
            power = np.abs(np.fft.rfft(_mono16k(path))) ** 2
            freqs = np.fft.rfftfreq(2 * power.size - 2, 1 / 16000)
            high = power[(freqs > 4000) & (freqs < 7500)].mean()
            mid = power[(freqs > 500) & (freqs < 2000)].mean()
            ratios.append(10 * np.log10(high / mid))
        return np.median(ratios)

    assert high_to_mid_db("cremad") < high_to_mid_db("emodb") - 6


# --- command line ------------------------------------------------------------------------------
def test_the_cli_writes_a_corpus_and_reports_bad_input(tmp_path, capsys):
    out = tmp_path / "cremad"
    status = main(
        ["synthesize", "--format", "cremad", "--out", str(out), "--speakers", "2",
         "--per-speaker-label", "1", "--seed", "3", "--bad-files"]
    )  # fmt: skip
    assert status == 0
    files = pd.read_csv(out / "synthetic_files.csv")
    assert len(files) == 2 * 6 + len(BAD_KINDS)
    assert "wrote 17 cremad files (5 bad)" in capsys.readouterr().out
    status = main(["synthesize", "--format", "emodb", "--out", str(out), "--speakers", "20"])
    assert status == 2
    assert "speakers 1 to 10" in capsys.readouterr().err
