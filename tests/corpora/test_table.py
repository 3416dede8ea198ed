"""A corpus given as a folder plus a CSV table: same manifest as a built-in reader, clear errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serhpo.cli import main
from serhpo.corpora import get_format
from serhpo.data import load_split
from serhpo.errors import UserError
from serhpo.prepare import MANIFEST_COLUMNS, prepare_corpus
from serhpo.splits import split_manifest

TARGETS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
#: What a generic reader must give as the built-in one does.
COMPARED = [
    "source_path",
    "speaker",
    "gender",
    "sentence",
    "original_label",
    "label",
    "num_samples",
]


def test_a_synthetic_corpus_exported_to_csv_gives_the_built_in_readers_manifest(
    small_emodb: Path, small_emodb_manifest: pd.DataFrame, tmp_path: Path
) -> None:
    # The generator's own record of each file, under column names of our choosing.
    files = pd.read_csv(small_emodb / "synthetic_files.csv", dtype=str, keep_default_na=False)
    table = files.rename(columns={"path": "wav", "speaker": "actor", "label": "emotion"})
    table.drop(columns=["code", "prototype", "kind"]).to_csv(tmp_path / "emodb.csv", index=False)
    fmt = get_format(
        "table",
        {"table": str(tmp_path / "emodb.csv"), "columns": {"path": "wav", "speaker": "actor"}},
        corpus="mine",
    )
    result = prepare_corpus(
        corpus="mine", fmt=fmt, raw_dir=small_emodb, out_dir=tmp_path / "16k", target_labels=TARGETS
    )
    ours = result.manifest.set_index("utterance_id")
    theirs = small_emodb_manifest.set_index("utterance_id")
    assert sorted(ours.index) == sorted(theirs.index)
    pd.testing.assert_frame_equal(ours.loc[theirs.index, COMPARED], theirs[COMPARED])
    assert result.rejects.empty and set(ours["corpus"]) == {"mine"}
    # The table's other columns are kept, after the manifest's own.
    assert list(ours.reset_index().columns[: len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    extras = ["intensity", "sample_rate", "channels", "table_duration_s"]
    assert list(ours.columns[len(MANIFEST_COLUMNS) - 1 :]) == extras
    assert result.summary["format"] == "table" and result.summary["official_count"] is None


# --- malformed tables: stop before any work ----------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"no table at .*table\.csv \(corpora\.mine\.table is null.*corpora\.mine\.table"),
        (b"", r"table .* is empty.*header line"),
        (
            b"file,speaker,emotion\n",
            r"has a header \(\['file', 'speaker', 'emotion'\]\) but no rows",
        ),
        (
            b"file,actor,emotion\na.wav,s1,angry\n",
            r"has columns \['file', 'actor', 'emotion'\], without the configured "
            r"columns.speaker: 'speaker'.*corpora.mine.columns",
        ),
        (b"file;speaker;emotion\na.wav;s1;angry\n", r"reads as one column.*comma-separated"),
        ("file,speaker,emotion\nä.wav,s1,ängry\n".encode("latin-1"), r"cannot be read as CSV"),
        (b'file,speaker,emotion\n"a.wav,s1,angry\n', r"cannot be read as CSV"),
    ],
    ids=["missing", "empty", "no rows", "missing column", "semicolons", "latin-1", "bad quote"],
)
def test_a_malformed_table_stops_before_any_work(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "other.csv").write_text("x\n")
    if content is not None:
        (root / "table.csv").write_bytes(content)
    with pytest.raises(UserError, match=message):
        prepare_corpus(
            corpus="mine",
            fmt=get_format("table", {}, corpus="mine"),
            raw_dir=root,
            out_dir=tmp_path / "16k",
            target_labels=TARGETS,
        )
    assert not (tmp_path / "16k").exists()


def test_a_missing_table_lists_the_csv_files_beside_it(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("x\n")
    with pytest.raises(UserError, match=r"CSV files beside it: \['labels.csv'\]"):
        get_format("table", {}, corpus="mine").list_utterances(tmp_path)


# --- bad rows: rejected with their reason, the rest kept ---------------------------------------
_PITCHES = itertools.count(200, 7)  # Hz, a new one per file written


def write_tone(path: Path, seconds: float = 0.8, rate: int = 22050) -> None:
    # A pitch of its own per path: byte-identical files are rejected as duplicates.
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.2 * np.sin(2 * np.pi * next(_PITCHES) * t), rate)


@pytest.fixture
def own_corpus(tmp_path: Path) -> Path:
    """A TESS-like folder of six recordings and a table with one bad row of each kind."""
    root = tmp_path / "corpus"
    for name in ("OAF_angry/back", "OAF_sad/bath", "YAF_angry/back", "YAF_ps/bean", "YAF_x/a"):
        write_tone(root / f"{name}.wav")
    write_tone(tmp_path / "outside.wav")
    (root / "OAF_sad/silent.wav").parent.mkdir(exist_ok=True)
    sf.write(root / "OAF_sad/silent.wav", np.zeros(16000), 16000)
    pd.DataFrame(
        [
            ["OAF_angry/back.wav", "OAF", "angry", "F", "test", "a"],
            ["OAF_sad/bath.wav", "OAF", "sad", "F", "train", "b"],
            ["YAF_angry/back.wav", "YAF", "angry", "F", "train", "c"],
            ["YAF_ps/bean.wav", "YAF", "ps", "F", "train", "d"],
            ["OAF_sad/silent.wav", "OAF", "sad", "F", "train", "e"],
            ["YAF_sad/gone.wav", "YAF", "sad", "F", "train", "f"],  # missing
            ["OAF_sad/bath.wav", "OAF", "sad", "F", "train", "b"],  # duplicate
            ["../outside.wav", "YAF", "sad", "F", "train", "g"],  # escapes
            ["YAF_x/a.wav", "YAF", "angyr", "F", "train", "h"],  # typo
        ],
        columns=["file", "speaker", "emotion", "gender", "part", "label"],
    ).to_csv(root / "table.csv", index=False)
    return root


def test_bad_rows_are_rejected_with_their_reason_and_nothing_else_is_lost(
    own_corpus: Path, tmp_path: Path
) -> None:
    fmt = get_format("table", {"labels": ["angry", "sad", "ps", "happy", "neutral"]}, corpus="tess")
    result = prepare_corpus(
        corpus="tess",
        fmt=fmt,
        raw_dir=own_corpus,
        out_dir=tmp_path / "16k",
        target_labels=TARGETS,
        label_map={"angry": "anger", "sad": "sadness", "happy": "happiness"},
    )
    manifest = result.manifest.set_index("utterance_id")
    assert sorted(manifest.index) == ["OAF_angry__back", "YAF_angry__back", "bath", "bean"]
    reasons = {
        Path(p).name: r
        for p, r in zip(result.rejects["source_path"], result.rejects["reason"], strict=True)
    }
    assert reasons["silent.wav"].startswith("silent")
    assert reasons["gone.wav"].startswith("missing: 'YAF_sad/gone.wav' is not in")
    assert (
        reasons["bath.wav"].startswith("duplicate:")
        and "table.csv line 3 is kept" in reasons["bath.wav"]
    )
    assert reasons["outside.wav"].startswith("outside the folder: '../outside.wav' has a '..' part")
    assert reasons["a.wav"].startswith("unknown label: 'angyr'")
    assert result.summary["rejected_per_reason"] == {
        "silent": 1, "missing": 1, "duplicate": 1, "outside the folder": 1, "unknown label": 1,
    }  # fmt: skip
    # ps is one of the corpus' labels but no target: kept with an empty label and counted.
    assert manifest.loc["bean", "label"] == "" and result.summary["dropped_per_original_label"] == {
        "ps": 1
    }
    assert manifest.loc["bath", "label"] == "sadness"
    # Columns named like the manifest's or the split's own are kept under another name.
    assert list(manifest["table_part"]) == ["test", "train", "train", "train"]  # sorted by id
    assert "table_label" in manifest.columns


def test_a_label_map_key_the_table_lacks_is_refused(own_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"names \['happy'\], which tess does not have"):
        prepare_corpus(
            corpus="tess",
            fmt=get_format("table", {}, corpus="tess"),
            raw_dir=own_corpus,
            out_dir=tmp_path / "16k",
            target_labels=TARGETS,
            label_map={"happy": "happiness"},
        )


def test_extra_columns_go_through_split_and_loading(own_corpus: Path, tmp_path: Path) -> None:
    for n in range(6):
        write_tone(own_corpus / f"more/{n}.wav")
    extra = pd.DataFrame(
        [[f"more/{n}.wav", f"S{n % 3}", "anger" if n % 2 else "sadness"] for n in range(6)],
        columns=["file", "speaker", "emotion"],
    )
    table = pd.read_csv(own_corpus / "table.csv", dtype=str).iloc[:3]
    pd.concat([table, extra]).fillna("").to_csv(own_corpus / "table.csv", index=False)
    manifest = prepare_corpus(
        corpus="tess",
        fmt=get_format("table", {}, corpus="tess"),
        raw_dir=own_corpus,
        out_dir=tmp_path / "16k",
        target_labels=TARGETS,
        label_map={"angry": "anger", "sad": "sadness"},
    ).manifest
    split = split_manifest(manifest, test_fraction=0.3, valid_fraction=0.3, seed=0)
    assert {"part", "table_part", "table_label"} <= set(split.columns)
    split.to_csv(tmp_path / "split.csv", index=False)
    data = load_split(tmp_path / "split.csv", parts=("train", "valid", "test"), labels=TARGETS)
    assert sum(len(part) for part in data.parts.values()) == len(manifest)


def test_serhpo_prepare_reads_a_tab_separated_table_named_in_reader_options(
    own_corpus: Path, tmp_path: Path
) -> None:
    table = pd.read_csv(own_corpus / "table.csv", dtype=str).iloc[:4]
    (own_corpus / "meta").mkdir()
    table.rename(columns={"file": "path"}).to_csv(own_corpus / "meta/t.tsv", sep="\t", index=False)
    options = {"table": "meta/t.tsv", "columns": {"path": "path"}, "labels": None}
    out = tmp_path / "out"
    status = main(
        [
            "prepare", "--corpus", "tess", "--format", "table", "--raw", str(own_corpus),
            "--reader-options", json.dumps(options), "--out", str(out / "16k"),
            "--manifest", str(out / "m.csv"), "--rejects", str(out / "r.csv"),
            "--summary", str(out / "s.json"), "--label-map", '{"angry": "anger", "sad": "sadness"}',
        ]
    )  # fmt: skip
    assert status == 0
    manifest = pd.read_csv(out / "m.csv", keep_default_na=False)
    assert len(manifest) == 4 and set(manifest["label"]) == {"anger", "sadness", ""}
