"""Backbone folders: the hyperparams rewrite, the checksum, the layout check."""

from __future__ import annotations

from pathlib import Path

import pytest

from serhpo.backbones.speechbrain_io import (
    WAV2VEC2_CLASS,
    check_backbone_folder,
    file_hashes,
    folder_checksum,
    localize_hyperparams,
    render_hyperparams,
    write_checksum,
    write_label_encoder,
)
from serhpo.errors import UserError

HUB_IDS = {"facebook/wav2vec2-base": "wav2vec2", "speechbrain/emo-iemocap": ""}

# Variants a hub file may use: literal pretrainer paths, quotes, comments, an old class path.
HUB_STYLE = """\
wav2vec2_hub: 'facebook/wav2vec2-base'  # the architecture
wav2vec2: !new:speechbrain.lobes.models.huggingface_wav2vec.HuggingFaceWav2Vec2
    source: !ref <wav2vec2_hub>
    save_path: wav2vec2_checkpoint
other_model: facebook/wav2vec2-base-960h
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    paths:
        wav2vec2: speechbrain/emo-iemocap/wav2vec2.ckpt
        model: "speechbrain/emo-iemocap/model.ckpt"
"""


def test_localize_replaces_hub_ids_and_files_inside_them_and_the_class():
    folder = Path("/models/with space")
    text = localize_hyperparams(HUB_STYLE, folder=folder, hub_ids=HUB_IDS)
    assert 'wav2vec2_hub: "/models/with space/wav2vec2"' in text
    assert '        wav2vec2: "/models/with space/wav2vec2.ckpt"' in text
    assert '        model: "/models/with space/model.ckpt"' in text
    assert f"wav2vec2: !new:{WAV2VEC2_CLASS}" in text
    assert "other_model: facebook/wav2vec2-base-960h" in text  # another model is left alone
    assert "save_path: wav2vec2_checkpoint" in text


def test_localize_refuses_a_file_that_never_names_the_wav2vec2():
    with pytest.raises(UserError, match="never names 'facebook/wav2vec2-base'"):
        localize_hyperparams(
            "pretrained_path: speechbrain/emo-iemocap\n", folder=Path("/m"), hub_ids=HUB_IDS
        )


def test_localize_refuses_a_hub_id_it_cannot_replace():
    text = "wav2vec2_hub: facebook/wav2vec2-base\nsources: [speechbrain/emo-iemocap]\n"
    with pytest.raises(UserError, match="still names 'speechbrain/emo-iemocap'"):
        localize_hyperparams(text, folder=Path("/m"), hub_ids=HUB_IDS)


def _fake_backbone(folder: Path) -> Path:
    (folder / "wav2vec2").mkdir(parents=True)
    (folder / "wav2vec2" / "config.json").write_text("{}")
    for name in ("wav2vec2.ckpt", "model.ckpt"):
        (folder / name).write_bytes(b"weights of " + name.encode())
    write_label_encoder(folder / "label_encoder.txt")
    (folder / "hyperparams.yaml").write_text(render_hyperparams(folder, encoder_dim=8))
    return folder


def test_checksum_ignores_the_location_but_not_the_contents(tmp_path: Path):
    first = _fake_backbone(tmp_path / "a")
    second = _fake_backbone(tmp_path / "b")
    assert (first / "hyperparams.yaml").read_text() != (second / "hyperparams.yaml").read_text()
    key = write_checksum(first, provenance={"kind": "test"})
    assert folder_checksum(file_hashes(second)) == key

    (second / "model.ckpt").write_bytes(b"other weights")
    assert folder_checksum(file_hashes(second)) != key
    (second / ".cache").mkdir()
    (second / ".cache" / "x").write_text("hub client state")
    assert ".cache/x" not in file_hashes(second)
    assert (first / "checksum.sha256").read_text().strip() == key


def test_label_encoder_file_is_speechbrains_format(tmp_path: Path):
    from speechbrain.dataio.encoder import CategoricalEncoder

    write_label_encoder(tmp_path / "labels.txt")
    encoder = CategoricalEncoder()
    encoder.load(tmp_path / "labels.txt")
    assert [encoder.ind2lab[i] for i in range(4)] == ["neu", "ang", "hap", "sad"]


def test_check_backbone_folder_names_missing_files_and_the_fix(tmp_path: Path):
    folder = _fake_backbone(tmp_path / "a")
    (folder / "model.ckpt").unlink()
    with pytest.raises(UserError, match=r"lacks \['model.ckpt'\].*build-tiny-backbone"):
        check_backbone_folder(folder)
