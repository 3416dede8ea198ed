import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serhpo.audio import Loudness
from serhpo.cli import main
from serhpo.corpora import get_format
from serhpo.corpora.base import LISTING_COLUMNS, CorpusFormat, Listing
from serhpo.errors import UserError
from serhpo.prepare import MANIFEST_COLUMNS, prepare_corpus

TARGETS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]


def list_toy(root: Path) -> Listing:
    """A toy naming convention: SPEAKER_LABEL_N.wav."""
    rows, unparsed = [], []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        parts = path.stem.split("_")
        if len(parts) != 3:
            unparsed.append({"source_path": str(path), "reason": "name is not SPEAKER_LABEL_N"})
            continue
        speaker, label, n = parts
        rows.append([path.stem, str(path.resolve()), speaker, "", n, label])
    return Listing(
        utterances=pd.DataFrame(rows, columns=LISTING_COLUMNS),
        unparsed=pd.DataFrame(unparsed, columns=["source_path", "reason"]),
    )


TOY = CorpusFormat(
    name="toy",
    labels=("angry", "calm", "sad"),
    default_label_map={"angry": "anger", "calm": "neutral", "sad": "sadness"},
    expected_count=9,
    list_utterances=list_toy,
    sample_rate=16000,
)


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.2 * np.sin(2 * np.pi * 200 * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture
def toy_corpus(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    sf.write(raw / "s1_angry_1.wav", tone(1.0, 48000, channels=2), 48000)
    sf.write(raw / "s1_calm_1.wav", tone(1.0, 96000), 96000)
    sf.write(raw / "sub" / "s2_sad_1.wav", tone(1.2, 22050), 22050, format="AIFF")
    sf.write(raw / "s2_angry_1.wav", tone(1.0, 16000), 16000)
    (raw / "s3_sad_1.wav").write_bytes(b"")
    sf.write(raw / "s3_calm_2.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(raw / "s3_angry_2.wav", tone(0.1, 16000), 16000)
    (raw / "s3_sad_2.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    (raw / "s3_sad_3.wav").write_text("not audio\n")
    (raw / "README.txt").write_text("about this corpus\n")
    return raw


def test_prepare_writes_mono_16k_and_rejects_each_bad_file_with_a_reason(
    toy_corpus: Path, tmp_path: Path
) -> None:
    result = prepare_corpus(
        corpus="toy", fmt=TOY, raw_dir=toy_corpus, out_dir=tmp_path / "16k", target_labels=TARGETS
    )
    manifest = result.manifest.set_index("utterance_id")
    assert list(result.manifest.columns) == MANIFEST_COLUMNS
    assert sorted(manifest.index) == ["s1_angry_1", "s1_calm_1", "s2_angry_1", "s2_sad_1"]
    for row in manifest.itertuples():
        info = sf.info(row.path)
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.frames == row.num_samples
    assert manifest.loc["s1_angry_1", "original_channels"] == 2
    assert manifest.loc["s1_calm_1", "original_sample_rate"] == 96000
    assert manifest.loc["s2_sad_1", "original_sample_rate"] == 22050  # AIFF named .wav
    assert manifest.loc["s1_calm_1", "label"] == "neutral"
    reasons = dict(zip(result.rejects["utterance_id"], result.rejects["reason"], strict=True))
    assert reasons["s3_sad_1"].startswith("empty")
    assert reasons["s3_calm_2"].startswith("silent")
    assert reasons["s3_angry_2"].startswith("too short")
    assert reasons["s3_sad_2"].startswith("unreadable")
    assert reasons["s3_sad_3"].startswith("unreadable")
    assert any("not part of the corpus" in r for r in result.rejects["reason"])  # README.txt
    assert result.summary["rejected"] == 6
    assert result.summary["rejected_per_reason"]["unreadable"] == 2


def test_labels_mapped_to_nothing_stay_in_the_manifest_and_are_counted(
    toy_corpus: Path, tmp_path: Path
) -> None:
    result = prepare_corpus(
        corpus="toy",
        fmt=TOY,
        raw_dir=toy_corpus,
        out_dir=tmp_path / "16k",
        target_labels=TARGETS,
        label_map={"calm": None},
    )
    assert result.manifest.set_index("utterance_id").loc["s1_calm_1", "label"] == ""
    assert result.summary["dropped_per_original_label"] == {"calm": 1}
    assert result.summary["kept"] == 3


def test_wrong_count_stops_before_decoding_and_says_how_to_accept_it(
    toy_corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match=r"has 9 toy recordings; expected 535.*expect_count: null"):
        prepare_corpus(
            corpus="toy",
            fmt=TOY,
            raw_dir=toy_corpus,
            out_dir=tmp_path / "16k",
            target_labels=TARGETS,
            expect_count=535,
        )
    assert not (tmp_path / "16k").exists()


def test_missing_folder_names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="corpora.toy.source"):
        prepare_corpus(
            corpus="toy",
            fmt=TOY,
            raw_dir=tmp_path / "nope",
            out_dir=tmp_path,
            target_labels=TARGETS,
        )


def prepare_real(tmp_path: Path, corpus: str, raw: Path, expect: str) -> tuple[pd.DataFrame, dict]:
    out = tmp_path / corpus
    status = main(
        [
            "prepare",
            "--corpus",
            corpus,
            "--raw",
            str(raw),
            "--out",
            str(out / "16k"),
            "--manifest",
            str(out / "manifest.csv"),
            "--rejects",
            str(out / "rejects.csv"),
            "--summary",
            str(out / "summary.json"),
            "--expect-count",
            expect,
            "--threads",
            "2",
        ]
    )
    assert status == 0
    manifest = pd.read_csv(out / "manifest.csv", dtype={"speaker": str}, keep_default_na=False)
    return manifest, json.loads((out / "summary.json").read_text())


def test_real_emodb_copy_gives_535_utterances_of_10_speakers(
    shared_corpora: Path, tmp_path: Path
) -> None:
    manifest, summary = prepare_real(tmp_path, "emodb", shared_corpora / "emodb-2s/wav", "official")
    assert len(manifest) == 535 and summary["rejected"] == 0
    assert manifest["speaker"].nunique() == 10
    assert set(manifest["label"]) == set(TARGETS)
    assert set(manifest["original_sample_rate"]) == {22050}
    assert summary["per_speaker"]["08"] == 58  # speaker 08 has no disgust recording
    assert get_format("emodb").expected_count == summary["usable"]


def test_real_ravdess_sample_gives_120_mono_16k_rows(shared_corpora: Path, tmp_path: Path) -> None:
    manifest, summary = prepare_real(tmp_path, "ravdess", shared_corpora / "ravdess-sample", "none")
    assert len(manifest) == 120
    assert set(manifest["original_channels"]) == {1, 2}
    for path in manifest["path"].sample(10, random_state=0):
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (16000, 1)
    # "surprised" is dropped by default and counted; "calm" maps onto neutral.
    assert summary["dropped_per_original_label"] == {"surprised": 16}
    assert summary["per_label"]["neutral"] == 24


def test_a_readers_extra_columns_follow_the_manifests_own_renamed_when_they_clash(
    toy_corpus: Path, tmp_path: Path
) -> None:
    def list_with_extras(root: Path) -> Listing:
        listing = list_toy(root)
        listing.utterances["take"] = "1"
        listing.utterances["fold"] = "studio"  # a split column's name
        return listing

    fmt = CorpusFormat(**{**TOY.__dict__, "list_utterances": list_with_extras})
    manifest = prepare_corpus(
        corpus="toy", fmt=fmt, raw_dir=toy_corpus, out_dir=tmp_path / "16k", target_labels=TARGETS
    ).manifest
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, "take", "toy_fold"]
    assert set(manifest["toy_fold"]) == {"studio"}


def test_a_byte_identical_copy_under_another_name_is_a_duplicate_and_the_first_is_kept(
    toy_corpus: Path, tmp_path: Path
) -> None:
    copy = toy_corpus / "s4_angry_9.wav"
    copy.write_bytes((toy_corpus / "s1_angry_1.wav").read_bytes())
    result = prepare_corpus(
        corpus="toy", fmt=TOY, raw_dir=toy_corpus, out_dir=tmp_path / "16k", target_labels=TARGETS
    )
    assert "s1_angry_1" in set(result.manifest["utterance_id"])
    assert "s4_angry_9" not in set(result.manifest["utterance_id"])
    reasons = dict(zip(result.rejects["utterance_id"], result.rejects["reason"], strict=True))
    assert reasons["s4_angry_9"].startswith("duplicate: same audio content")
    assert str((toy_corpus / "s1_angry_1.wav").resolve()) in reasons["s4_angry_9"]
    assert not (tmp_path / "16k" / "s4_angry_9.wav").exists()
    assert result.summary["rejected_per_reason"]["duplicate"] == 1


def test_loudness_normalisation_is_named_in_the_summary(toy_corpus: Path, tmp_path: Path) -> None:
    off = prepare_corpus(
        corpus="toy", fmt=TOY, raw_dir=toy_corpus, out_dir=tmp_path / "a", target_labels=TARGETS
    )
    assert off.summary["loudness"] == {"enabled": False}
    on = prepare_corpus(
        corpus="toy",
        fmt=TOY,
        raw_dir=toy_corpus,
        out_dir=tmp_path / "b",
        target_labels=TARGETS,
        loudness=Loudness(enabled=True, target_lufs=-30.0),
    )
    assert on.summary["loudness"]["enabled"] and on.summary["loudness"]["target_lufs"] == -30.0
    assert on.summary["loudness"]["peak_limited"] == 0
    # The 0.2-amplitude tones (about -17 LUFS) come down by about 13 dB.
    assert on.summary["loudness"]["gain_db"]["median"] == pytest.approx(-13, abs=2)
    levels = [np.abs(sf.read(path)[0]).max() for path in on.manifest["path"]]
    assert max(levels) < 0.1


def test_every_file_of_a_built_in_corpus_folder_is_accounted_for(tmp_path: Path) -> None:
    # Issue 15: a broken link crashed the stage, a FLAC vanished, a cut WAV, clipping and
    # cancelling channels passed unnoticed, and a 100-Hz file was kept.
    from serhpo.corpora.scan import AUDIO_SUFFIXES, walk_files
    from serhpo.corpora.synthetic import synthesize_corpus

    raw = tmp_path / "raw"
    synthesize_corpus("emodb", raw, n_speakers=1, utterances_per_speaker_label=1, seed=0,
                      duration_s=(0.8, 0.9))  # fmt: skip
    folder = next(raw.rglob("*.wav")).parent
    speech = tone(1.0, 16000)
    (folder / "16a01Wa.wav").symlink_to(tmp_path / "gone.wav")
    sf.write(folder / "16a02Wa.flac", speech, 16000)
    sf.write(folder / "16a03Wa.wav", speech, 16000, subtype="PCM_16")
    cut = (folder / "16a03Wa.wav").read_bytes()
    (folder / "16a03Wa.wav").write_bytes(cut[: len(cut) * 3 // 4])
    sf.write(folder / "16a04Wa.wav", 6 * speech, 16000, subtype="FLOAT")
    sf.write(folder / "16a05Wa.wav", np.stack([speech, -speech], axis=1), 16000, subtype="FLOAT")
    sf.write(folder / "16a07Wa.wav", tone(8.0, 100), 100)
    (folder / "README.txt").write_text("not a recording\n")

    prepared = prepare_corpus(
        corpus="emodb", fmt=get_format("emodb"), raw_dir=raw, out_dir=tmp_path / "16k",
        target_labels=TARGETS,
    )  # fmt: skip
    kept = set(prepared.manifest["source_path"])
    reasons = dict(zip(prepared.rejects["source_path"], prepared.rejects["reason"], strict=True))
    summary = prepared.summary
    everything = {str(path) for path in walk_files(raw)}
    ignored = {path for path in everything if Path(path).suffix not in AUDIO_SUFFIXES}
    assert kept | set(reasons) | ignored == everything and not kept & set(reasons)
    assert sum(summary["ignored_files"].values()) == len(ignored)  # the synthesizer's too
    assert summary["ignored_files"][".txt"] == 1
    assert reasons[str(folder / "16a01Wa.wav")].startswith("broken link: it points to ")
    assert reasons[str(folder / "16a07Wa.wav")].startswith("sample rate: 100 Hz")
    assert {str(folder / name) for name in ("16a02Wa.flac", "16a05Wa.wav")} <= kept
    notes = summary["kept_with_notes"]
    assert notes["truncated"] == {"count": 1, "utterances": ["16a03Wa"]}
    assert notes["clipped"] == {"count": 1, "utterances": ["16a04Wa"]}
    assert notes["channels cancel"] == {"count": 1, "utterances": ["16a05Wa"]}
    assert summary["rejected_per_reason"] == {"broken link": 1, "sample rate": 1}
