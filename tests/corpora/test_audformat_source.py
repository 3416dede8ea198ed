"""A corpus given as an audformat database: same manifest as a built-in reader, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import audformat
import pandas as pd
import pytest

from serhpo.corpora import get_format, source_inputs
from serhpo.corpora.audformat_source import write_database
from serhpo.errors import UserError
from serhpo.prepare import prepare_corpus

TARGETS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
COMPARED = [
    "file",
    "speaker",
    "gender",
    "sentence",
    "original_label",
    "label",
    "num_samples",
]


def emodb_database(
    root: Path, files: pd.DataFrame, *, relabel_first_test_file: bool = False
) -> None:
    """Write an audformat database in audb's EmoDB layout for the files of a synthetic EmoDB:
    the labels in a table of all files and again in a train and a test table, the speaker (a
    scheme whose labels hold gender and age) and the sentence in a table of their own."""
    db = audformat.Database(name="emodb-like", source="tests", usage="unrestricted")
    db.schemes["emotion"] = audformat.Scheme("str", labels=sorted(set(files["label"])))
    speakers = files.drop_duplicates("speaker")
    db.schemes["speaker"] = audformat.Scheme(
        "str",
        labels={
            s: {"gender": g, "age": 30 + i}
            for i, (s, g) in enumerate(speakers[["speaker", "gender"]].values)
        },
    )
    train, test = files.iloc[::2], files.iloc[1::2]
    tables = {"emotion": files}  # audb's EmoDB: every file here, and again in train or test
    tables.update(
        {f"emotion.categories.{n}.gold_standard": p for n, p in (("train", train), ("test", test))}
    )
    for table_id, part in tables.items():
        labels = list(part["label"])
        if relabel_first_test_file and table_id.endswith("test.gold_standard"):
            labels[0] = "anger" if labels[0] != "anger" else "fear"
        db[table_id] = audformat.Table(audformat.filewise_index(list(part["path"])))
        db[table_id]["emotion"] = audformat.Column(scheme_id="emotion")
        db[table_id]["emotion"].set(labels)
        db[table_id]["emotion.confidence"] = audformat.Column()
        db[table_id]["emotion.confidence"].set([0.9] * len(part))
    db["files"] = audformat.Table(audformat.filewise_index(list(files["path"])))
    db["files"]["speaker"] = audformat.Column(scheme_id="speaker")
    db["files"]["speaker"].set(list(files["speaker"]))
    db["files"]["sentence"] = audformat.Column()
    db["files"]["sentence"].set(list(files["sentence"]))
    db.save(str(root))


@pytest.fixture(scope="module")
def database(small_emodb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small synthetic EmoDB (a copy) described by an audformat database."""
    root = shutil.copytree(small_emodb, tmp_path_factory.mktemp("database") / "emodb")
    files = pd.read_csv(root / "synthetic_files.csv", dtype=str, keep_default_na=False)
    emodb_database(root, files)
    return root


def with_file(manifest: pd.DataFrame, root: Path) -> pd.DataFrame:
    """The manifest indexed by utterance id, with each source file relative to ``root``."""
    relative = [Path(p).relative_to(root).as_posix() for p in manifest["source_path"]]
    return manifest.assign(file=relative).set_index("utterance_id")


def test_an_audformat_database_gives_the_built_in_readers_manifest(
    database: Path, small_emodb: Path, small_emodb_manifest: pd.DataFrame, tmp_path: Path
) -> None:
    result = prepare_corpus(
        corpus="mine",
        fmt=get_format("audformat", {}, corpus="mine"),
        raw_dir=database,
        out_dir=tmp_path / "16k",
        target_labels=TARGETS,
    )
    ours = with_file(result.manifest, database)
    theirs = with_file(small_emodb_manifest, small_emodb)
    assert sorted(ours.index) == sorted(theirs.index)
    pd.testing.assert_frame_equal(ours.loc[theirs.index, COMPARED], theirs[COMPARED])
    assert result.rejects.empty
    # The label table's other column and the speaker's other field are kept.
    assert set(ours["emotion.confidence"]) == {"0.9"} and ours["age"].astype(int).min() == 30
    assert source_inputs("audformat", database)[0].name.startswith("db.")


def test_one_table_can_be_chosen(database: Path) -> None:
    listing = get_format(
        "audformat", {"table": "emotion.categories.test.gold_standard"}, corpus="mine"
    ).list_utterances(database)
    assert len(listing.utterances) == 10  # every second of 21 files


def test_label_tables_that_disagree_on_a_file_reject_it(small_emodb: Path, tmp_path: Path) -> None:
    root = shutil.copytree(small_emodb, tmp_path / "emodb")
    files = pd.read_csv(root / "synthetic_files.csv", dtype=str, keep_default_na=False)
    emodb_database(root, files, relabel_first_test_file=True)
    listing = get_format("audformat", {}, corpus="mine").list_utterances(root)
    assert len(listing.utterances) == 20
    assert list(listing.rejected["reason"].str.split(":").str[0]) == ["conflicting rows"] * 2
    assert "table emotion, table emotion.categories.test" in listing.rejected["reason"].iloc[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"columns": {"label": "mood"}},
            r"no filewise table has a column 'mood'.*"
            r"'files': \['speaker \(scheme speaker\)', 'sentence'\]",
        ),
        (
            {"columns": {"speaker": "actor"}},
            r"no filewise table has a column 'actor'.*columns.speaker",
        ),
        ({"table": "emotions"}, r"there is no table 'emotions'.*corpora.mine.table"),
        ({"columns": {"gender": "sex"}}, r"hold the gender 'sex'.*columns.gender"),
    ],
    ids=["label", "speaker", "table", "gender"],
)
def test_what_is_not_found_is_named_with_what_the_database_holds(
    database: Path, options: dict, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        get_format("audformat", options, corpus="mine").list_utterances(database)


def test_a_folder_without_db_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(UserError, match=r"no db.yaml in .*\['a.wav'\].*format: table"):
        get_format("audformat", {}, corpus="mine").list_utterances(tmp_path)


def test_labels_only_in_a_segmented_table_are_refused(tmp_path: Path) -> None:
    db = audformat.Database(name="segments")
    db["turns"] = audformat.Table(audformat.segmented_index(["a.wav"], [0.0], [1.0]))
    db["turns"]["emotion"] = audformat.Column()
    db["turns"]["emotion"].set(["angry"])
    db.save(str(tmp_path))
    with pytest.raises(UserError, match=r"only segmented tables \['turns'\]"):
        get_format("audformat", {}, corpus="mine").list_utterances(tmp_path)


def test_written_database_rows_go_through_the_row_checks(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x.wav").write_bytes(b"RIFF")
    files = pd.DataFrame(
        [["a/x.wav", "s1", "angry", "female", "w1"], ["a/gone.wav", "s2", "sad", "", "w2"]],
        columns=["file", "speaker", "emotion", "gender", "word"],
    )
    write_database(files, tmp_path, name="mine")
    listing = get_format("audformat", {}, corpus="mine").list_utterances(tmp_path)
    row = listing.utterances.iloc[0]
    assert (row["utterance_id"], row["speaker"], row["gender"], row["word"]) == (
        "x",
        "s1",
        "female",
        "w1",
    )
    assert listing.rejected["reason"].str.startswith("missing: 'a/gone.wav'").all()
    assert "table emotion" in listing.rejected["reason"].iloc[0]
    assert listing.labels == ("angry", "sad")


@pytest.mark.parametrize("name", ["id", "original_label", "path", "location"])
def test_an_unconfigured_column_named_like_a_field_means_nothing(tmp_path: Path, name: str) -> None:
    for file in ("a.wav", "b.wav"):
        (tmp_path / file).write_bytes(b"RIFF")
    files = pd.DataFrame(
        [["a.wav", "s1", "angry", "", "x1"], ["b.wav", "s2", "sad", "", "x2"]],
        columns=["file", "speaker", "emotion", "gender", name],
    )
    write_database(files, tmp_path, name="mine")
    listing = get_format("audformat", {}, corpus="mine").list_utterances(tmp_path)
    utterances = listing.utterances
    assert listing.rejected.empty
    assert utterances["utterance_id"].tolist() == ["a", "b"]  # derived, not the column's
    assert utterances["original_label"].tolist() == ["angry", "sad"]
    assert [Path(p).name for p in utterances["source_path"]] == ["a.wav", "b.wav"]
    kept = [column for column in utterances.columns if column.endswith("." + name)]
    assert len(kept) == 1 and utterances[kept[0]].tolist() == ["x1", "x2"]
