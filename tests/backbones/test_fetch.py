"""fetch-backbone without network: a stand-in hub, the hyperparams rewrite, the offline errors."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError

from serhpo.backbones.fetch import (
    ORIGINAL_HYPERPARAMS,
    SPEECHBRAIN_REPO,
    SPEECHBRAIN_REVISION,
    WAV2VEC2_REPO,
    WAV2VEC2_REVISION,
    fetch_backbone,
)
from serhpo.backbones.speechbrain_io import WAV2VEC2_CLASS, load_encoder_classifier, read_checksum
from serhpo.backbones.tiny import build_tiny_backbone
from serhpo.cli import main
from serhpo.errors import UserError


def _as_on_the_hub(text: str) -> str:
    """The tiny backbone's hyperparams as the hub's file names things (hub ids, old class)."""
    replacements = {
        "wav2vec2_hub": "facebook/wav2vec2-base",
        "wav2vec2_folder": "wav2vec2_checkpoint",
        "pretrained_path": "speechbrain/emotion-recognition-wav2vec2-IEMOCAP",
    }
    for key, value in replacements.items():
        text = re.sub(rf"^{key}: .*$", f"{key}: {value}", text, flags=re.M)
    old_class = "speechbrain.lobes.models.huggingface_transformers.wav2vec2.Wav2Vec2"
    return text.replace(WAV2VEC2_CLASS, old_class)


class FakeHub:
    """Serves the tiny backbone's files as the two hub repositories; records the calls."""

    def __init__(self, tiny: Path) -> None:
        self.tiny = tiny
        self.calls: list[dict] = []

    def __call__(self, *, repo_id: str, revision: str, local_dir: str, allow_patterns: list):
        self.calls.append({"repo_id": repo_id, "revision": revision, "patterns": allow_patterns})
        local = Path(local_dir)
        local.mkdir(parents=True, exist_ok=True)
        if repo_id == SPEECHBRAIN_REPO:
            for name in ("wav2vec2.ckpt", "model.ckpt", "label_encoder.txt"):
                shutil.copy(self.tiny / name, local / name)
            text = (self.tiny / "hyperparams.yaml").read_text()
            (local / "hyperparams.yaml").write_text(_as_on_the_hub(text))
        elif repo_id == WAV2VEC2_REPO:
            shutil.copytree(self.tiny / "wav2vec2", local, dirs_exist_ok=True)
        (local / ".cache").mkdir(exist_ok=True)  # as huggingface_hub leaves it
        return str(local)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "tiny"
    build_tiny_backbone(folder, seed=0)
    return folder


def test_downloads_pinned_revisions_and_points_hyperparams_at_local_copies(
    tiny: Path, tmp_path: Path
):
    hub = FakeHub(tiny)
    out = tmp_path / "wav2vec2"
    key = fetch_backbone(out, download=hub, verify=True)

    assert [(c["repo_id"], c["revision"]) for c in hub.calls] == [
        (SPEECHBRAIN_REPO, SPEECHBRAIN_REVISION),
        (WAV2VEC2_REPO, WAV2VEC2_REVISION),
    ]
    assert all(re.fullmatch("[0-9a-f]{40}", c["revision"]) for c in hub.calls)
    text = (out / "hyperparams.yaml").read_text()
    assert f'wav2vec2_hub: "{(out / "wav2vec2").resolve()}"' in text
    assert f'pretrained_path: "{out.resolve()}"' in text
    assert f"!new:{WAV2VEC2_CLASS}" in text
    assert "facebook/" not in text and "speechbrain/emotion" not in text
    assert "facebook/wav2vec2-base" in (out / ORIGINAL_HYPERPARAMS).read_text()
    # The same weights as the tiny backbone; the hub client's .cache does not count.
    assert key == read_checksum(out)
    assert key != read_checksum(tiny)  # hyperparams.orig.yaml is part of it


def test_fetched_folder_loads_with_the_hub_unreachable(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "wav2vec2"
    fetch_backbone(out, download=FakeHub(tiny), verify=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    from speechbrain.inference.classifiers import EncoderClassifier

    classifier = EncoderClassifier.from_hparams(source=str(out), savedir=str(tmp_path / "sb"))
    assert sorted(classifier.mods.keys()) == ["avg_pool", "output_mlp", "wav2vec2"]


def test_unreachable_hub_is_a_user_error_that_names_the_local_dir_option(
    tiny: Path, tmp_path: Path
):
    def no_network(**kwargs):
        raise LocalEntryNotFoundError("Connection refused")

    with pytest.raises(UserError) as caught:
        fetch_backbone(tmp_path / "out", download=no_network)
    message = str(caught.value)
    assert "could not reach the Hugging Face Hub" in message
    assert SPEECHBRAIN_REPO in message and SPEECHBRAIN_REVISION in message
    assert "--local-dir" in message
    assert "backbone.dir" in message  # the config key that exists (not backbone.local_dir)


def test_real_client_in_offline_mode_fails_fast_with_the_same_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    started = time.perf_counter()
    with pytest.raises(UserError, match="could not reach the Hugging Face Hub"):
        fetch_backbone(tmp_path / "out")  # the real snapshot_download
    assert time.perf_counter() - started < 10


def test_cli_offline_exits_2_with_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["fetch-backbone", str(tmp_path / "out")]) == 2
    assert "--local-dir" in capsys.readouterr().err


def test_local_dir_prepared_elsewhere_is_copied_and_localized(tiny: Path, tmp_path: Path):
    prepared = tmp_path / "usb stick"
    FakeHub(tiny)(
        repo_id=SPEECHBRAIN_REPO, revision="x", local_dir=str(prepared), allow_patterns=[]
    )
    FakeHub(tiny)(
        repo_id=WAV2VEC2_REPO, revision="x", local_dir=str(prepared / "wav2vec2"), allow_patterns=[]
    )
    out = tmp_path / "models" / "wav2vec2"
    fetch_backbone(out, local_dir=prepared, verify=False)
    assert str(out.resolve()) in (out / "hyperparams.yaml").read_text()
    assert not (out / ".cache").exists()

    # A folder fetched on another machine (already localized there) works too.
    elsewhere = tmp_path / "elsewhere"
    key = fetch_backbone(elsewhere, local_dir=out, verify=False)
    text = (elsewhere / "hyperparams.yaml").read_text()
    assert str(elsewhere.resolve()) in text and str(out.resolve()) not in text
    assert key == read_checksum(out)
    load_encoder_classifier(elsewhere)


def test_local_dir_without_the_files_says_what_is_missing(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="hyperparams.yaml"):
        fetch_backbone(tmp_path / "out", local_dir=empty, verify=False)
