"""Backbone folders: the hyperparams rewrite, the checksum, the layout check, and loading
without running any code from the folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from serhpo.backbones.speechbrain_io import (
    WAV2VEC2_CLASS,
    check_backbone_folder,
    file_hashes,
    folder_checksum,
    load_backbone,
    localize_hyperparams,
    read_hyperparams_plain,
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


# ---------------------------------------------------------------- load_backbone: no code runs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serhpo.backbones.tiny import build_tiny_backbone

    folder = tmp_path_factory.mktemp("models") / "tiny"
    build_tiny_backbone(folder, seed=0)
    return folder


def _copy(tiny: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(tiny, tmp_path / "copy"))


def test_load_backbone_never_evaluates_the_yaml_tags(tiny: Path, tmp_path: Path):
    folder = _copy(tiny, tmp_path)
    marker = tmp_path / "ran"
    with (folder / "hyperparams.yaml").open("a") as yaml_file:
        yaml_file.write(f'\nexploit: !apply:os.system ["touch {marker}"]\n')
        yaml_file.write('other: !!python/object/apply:os.system ["touch ' + str(marker) + '"]\n')
    backbone = load_backbone(folder)
    assert not marker.exists()
    assert backbone.output_norm is True and backbone.normalize_wav is True
    reference = load_backbone(tiny)
    assert all(
        torch.equal(value, reference.model.state_dict()[key])
        for key, value in backbone.model.state_dict().items()
    )
    plain = read_hyperparams_plain(folder)
    assert plain["exploit"] == [f"touch {marker}"] and not marker.exists()


def test_load_backbone_leaves_the_callers_random_stream_alone(tiny: Path):
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    load_backbone(tiny)
    assert torch.equal(torch.rand(3), expected)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("wav2vec2.ckpt", _truncate, r"wav2vec2\.ckpt cannot be read as PyTorch weights"),
        ("wav2vec2.ckpt", lambda p: p.write_bytes(b""), r"wav2vec2\.ckpt is empty"),
        (
            "wav2vec2.ckpt",
            lambda p: torch.save({"model.feature_projection.projection.weight": torch.ones(3)}, p),
            r"wav2vec2\.ckpt does not fit the wav2vec2",
        ),
        (
            "wav2vec2.ckpt",
            lambda p: torch.save({"other.weight": torch.ones(3)}, p),
            r"none of the 1 tensors of .*wav2vec2\.ckpt",
        ),
        ("model.ckpt", lambda p: torch.save({"0.w.weight": torch.ones(4, 5)}, p), r"shape"),
        (
            "model.ckpt",
            lambda p: torch.save({"0.w.weight": torch.full((4, 32), float("nan"))}, p),
            r"model\.ckpt holds non-finite weights",
        ),
        ("hyperparams.yaml", lambda p: p.write_text("a: [unclosed\n"), r"cannot be read as YAML"),
        ("wav2vec2/model.safetensors", _truncate, r"wav2vec2 weights in .* cannot be loaded"),
        (
            "wav2vec2/config.json",
            lambda p: p.write_text(p.read_text().replace('"wav2vec2"', '"hubert"')),
            r"describes a 'hubert' model",
        ),
    ],
)
def test_a_damaged_backbone_file_is_a_user_error_naming_it(
    tiny: Path, tmp_path: Path, name: str, damage, message: str
):
    folder = _copy(tiny, tmp_path)
    damage(folder / name)
    with pytest.raises(UserError, match=message) as error:
        load_backbone(folder)
    assert "Rebuild or refetch" in str(error.value)
