import pandas as pd
import pytest

from serhpo.errors import UserError
from serhpo.splits import (
    inner_speaker_folds,
    parse_folds,
    split_by_speaker,
    split_manifest,
    split_stratified,
)

LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]


@pytest.fixture
def manifest() -> pd.DataFrame:
    """10 speakers x 7 labels x 6 utterances, with one speaker missing a label (as EmoDB's 08)."""
    rows = [
        {"utterance_id": f"{s:02d}_{label}_{i}", "speaker": f"{s:02d}", "label": label}
        for s in range(10)
        for label in LABELS
        for i in range(6)
        if not (s == 8 and label == "disgust")
    ]
    return pd.DataFrame(rows)


def test_speaker_split_never_shares_a_speaker(manifest: pd.DataFrame) -> None:
    parts = split_by_speaker(manifest, seed=3)
    speakers = manifest.groupby(parts)["speaker"].apply(set)
    assert not (speakers["train"] & speakers["test"])
    assert not (speakers["valid"] & speakers["test"])
    assert not (speakers["train"] & speakers["valid"])
    assert set(parts) == {"train", "valid", "test"}


def test_speaker_split_holds_every_label_in_every_part(manifest: pd.DataFrame) -> None:
    parts = split_by_speaker(manifest, seed=0)
    for part in ("train", "valid", "test"):
        assert set(manifest.loc[parts == part, "label"]) == set(LABELS)
    # About 20 % of speakers (2 of 10) are held out for test.
    assert manifest.loc[parts == "test", "speaker"].nunique() == 2


def test_stratified_split_keeps_label_proportions(manifest: pd.DataFrame) -> None:
    parts = split_stratified(manifest, test_fraction=0.2, valid_fraction=0.2, seed=1)
    overall = manifest["label"].value_counts(normalize=True)
    for part, share in (("test", 0.2), ("valid", 0.16), ("train", 0.64)):
        in_part = manifest.loc[parts == part, "label"].value_counts(normalize=True)
        assert (in_part - overall).abs().max() < 0.03
        assert abs((parts == part).mean() - share) < 0.02


@pytest.mark.parametrize("strategy", ["stratified", "speaker"])
def test_splits_are_deterministic_and_seeded(manifest: pd.DataFrame, strategy: str) -> None:
    first = split_manifest(manifest, strategy=strategy, seed=7)["part"]
    again = split_manifest(manifest, strategy=strategy, seed=7)["part"]
    other = split_manifest(manifest, strategy=strategy, seed=8)["part"]
    assert first.equals(again)
    assert not first.equals(other)


def test_leave_speakers_out_folds_partition_speakers(manifest: pd.DataFrame) -> None:
    split = split_manifest(manifest, strategy="speaker", folds=5, seed=0)
    assert sorted(split["fold"].unique()) == [0, 1, 2, 3, 4]
    assert (split.groupby("speaker")["fold"].nunique() == 1).all()


@pytest.mark.parametrize("folds", [3, 5, "loso"])
def test_outer_folds_hold_out_every_speaker_exactly_once(manifest: pd.DataFrame, folds) -> None:
    split = split_manifest(manifest, strategy="speaker", folds=folds, seed=1)
    per_speaker = split.groupby("speaker")["fold"].nunique()
    assert (per_speaker == 1).all() and set(per_speaker.index) == set(manifest["speaker"])
    n_folds = 10 if folds == "loso" else folds
    assert sorted(split["fold"].unique()) == list(range(n_folds))
    if folds == "loso":
        assert (split.groupby("fold")["speaker"].nunique() == 1).all()
    assert set(split["part"]) == {"train", "valid", "test"}  # the single split stays


def test_inner_folds_divide_an_outer_folds_training_speakers(manifest: pd.DataFrame) -> None:
    split = split_manifest(manifest, strategy="speaker", folds=5, seed=0)
    training = split[split["fold"] != 0]
    inner = inner_speaker_folds(training, inner_folds=3, seed=0)
    assert sorted(inner.unique()) == [0, 1, 2]
    assert (training.groupby(inner)["speaker"].nunique() >= 2).all()
    assert training.assign(inner=inner).groupby("speaker")["inner"].nunique().eq(1).all()
    assert inner.equals(inner_speaker_folds(training, inner_folds=3, seed=0))


def test_folds_settings_are_checked(manifest: pd.DataFrame) -> None:
    assert parse_folds("loso") == "loso" and parse_folds("4") == 4 and parse_folds(0) == 0
    for bad in (1, -2, "five", 2.5):
        with pytest.raises(UserError, match="expected 0 .*loso"):
            parse_folds(bad)
    with pytest.raises(UserError, match="loso.*needs split.strategy: speaker"):
        split_manifest(manifest, strategy="stratified", folds="loso")


def test_unlabelled_rows_are_left_out(manifest: pd.DataFrame) -> None:
    manifest.loc[manifest["label"] == "boredom", "label"] = ""
    split = split_manifest(manifest, strategy="speaker", seed=0)
    assert "boredom" not in set(split["label"]) and "" not in set(split["label"])
    assert len(split) == (manifest["label"] != "").sum()


def test_speaker_split_of_two_speakers_says_what_to_do(manifest: pd.DataFrame) -> None:
    two = manifest[manifest["speaker"].isin(["00", "01"])]
    with pytest.raises(UserError, match="at least 3 speakers.*stratified"):
        split_manifest(two, strategy="speaker")


def test_too_many_folds_for_speakers_is_refused(manifest: pd.DataFrame) -> None:
    with pytest.raises(UserError, match="11.*10 speakers"):
        split_manifest(manifest, strategy="speaker", folds=11)


def test_a_two_speaker_zero_shot_corpus_is_not_split_and_keeps_every_labelled_row(
    manifest: pd.DataFrame,
) -> None:
    two = manifest[manifest["speaker"].isin(["00", "01"])].copy()
    two.loc[two.index[:40], "label"] = ""  # unmapped rows: left out
    two = two[~((two["label"] == "fear") & (two["speaker"] == "01"))]
    two = two.drop(two[two["label"] == "fear"].index[1:])  # one fear utterance only
    split = split_manifest(two, strategy="speaker", folds=5, role="zero_shot")
    assert set(split["part"]) == {"test"}
    assert len(split) == (two["label"] != "").sum()
    assert "fold" not in split.columns


def test_the_split_command_passes_the_role(manifest: pd.DataFrame, tmp_path) -> None:
    from serhpo import cli

    two = manifest[manifest["speaker"].isin(["00", "01"])]
    two.to_csv(tmp_path / "manifest.csv", index=False)
    status = cli.main(
        [
            "split", str(tmp_path / "manifest.csv"), str(tmp_path / "split.csv"),
            "--strategy", "speaker", "--role", "zero_shot",
        ]
    )  # fmt: skip
    assert status == 0
    assert set(pd.read_csv(tmp_path / "split.csv")["part"]) == {"test"}
