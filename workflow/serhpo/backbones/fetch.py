"""Download the paper's pretrained backbone at pinned revisions and make it load offline.

The paper's model is SpeechBrain's ``speechbrain/emotion-recognition-wav2vec2-IEMOCAP``
(a wav2vec2-base fine-tuned on IEMOCAP's four emotions), whose hparams build the
architecture from ``facebook/wav2vec2-base``. Both are downloaded with
``huggingface_hub.snapshot_download`` at pinned commits into one backbone folder
(layout: :mod:`serhpo.backbones.speechbrain_io`), and ``hyperparams.yaml`` is rewritten
to point at the local copies, so that every later stage runs with ``HF_HUB_OFFLINE=1``.
The downloaded file is kept as ``hyperparams.orig.yaml``.

Without network, prepare the same layout elsewhere and pass it as ``--local-dir``.

Example:
    $ serhpo fetch-backbone resources/models/wav2vec2
    $ serhpo fetch-backbone resources/models/wav2vec2 --local-dir /media/usb/wav2vec2
"""

from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serhpo.backbones.speechbrain_io import (
    HYPERPARAMS,
    WAV2VEC2_SUBDIR,
    check_backbone_folder,
    load_backbone,
    localize_hyperparams,
    write_checksum,
)
from serhpo.errors import UserError

log = logging.getLogger(__name__)

SPEECHBRAIN_REPO = "speechbrain/emotion-recognition-wav2vec2-IEMOCAP"
#: Commit of SPEECHBRAIN_REPO used by default (the hub's ``main`` moves; a pin does not).
SPEECHBRAIN_REVISION = "117a9c3dff08be81a3628eecf6a66b547ec1659b"
WAV2VEC2_REPO = "facebook/wav2vec2-base"
#: Commit of WAV2VEC2_REPO used by default.
WAV2VEC2_REVISION = "0b5b8e868dd84f03fd87d01f9c4ff0f080fecfe8"

ORIGINAL_HYPERPARAMS = "hyperparams.orig.yaml"
_SPEECHBRAIN_FILES = ["hyperparams.yaml", "*.ckpt", "label_encoder.txt", "custom_interface.py"]
_WAV2VEC2_FILES = ["config.json", "preprocessor_config.json", "*.safetensors", "pytorch_model.bin"]

Downloader = Callable[..., Any]


def _download(
    download: Downloader, *, repo_id: str, revision: str, local_dir: Path, patterns: list[str]
) -> None:
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    log.info("downloading %s at %s into %s", repo_id, revision, local_dir)
    try:
        download(
            repo_id=repo_id, revision=revision, local_dir=str(local_dir), allow_patterns=patterns
        )
    except (RevisionNotFoundError, RepositoryNotFoundError) as error:
        raise UserError(
            f"the Hugging Face Hub has no {repo_id!r} at revision {revision!r} "
            f"({type(error).__name__}). Check the repository and the pinned revision "
            "(backbone.*_revision in config.yaml, --*-revision on the command line)."
        ) from error
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise UserError(
            f"could not reach the Hugging Face Hub to download {repo_id} at revision "
            f"{revision} ({type(error).__name__}: {str(error).splitlines()[0]}). "
            "Run this stage where the hub is reachable (check HF_ENDPOINT, proxies and "
            "HF_HUB_OFFLINE), or prepare a folder elsewhere with the same layout "
            f"({SPEECHBRAIN_REPO}'s files, plus {WAV2VEC2_REPO}'s in a {WAV2VEC2_SUBDIR}/ "
            "subfolder, e.g. with `hf download REPO --revision REV --local-dir DIR`), copy "
            "it here and pass it with --local-dir, or name it in the config as backbone.dir "
            "(the workflow then reads it in place and runs no fetch_backbone job)."
        ) from error


def _copy_local(source: Path, out: Path) -> None:
    source = Path(source)
    if not source.is_dir():
        raise UserError(
            f"--local-dir {source} is not a folder; expected a copy of {SPEECHBRAIN_REPO} "
            f"with {WAV2VEC2_REPO} in its {WAV2VEC2_SUBDIR}/ subfolder."
        )
    if source.resolve() == Path(out).resolve():
        return
    shutil.copytree(
        source,
        out,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".*", "checksum.sha256", "backbone.json"),
    )


def fetch_backbone(
    out: Path,
    *,
    speechbrain_repo: str = SPEECHBRAIN_REPO,
    speechbrain_revision: str = SPEECHBRAIN_REVISION,
    wav2vec2_repo: str = WAV2VEC2_REPO,
    wav2vec2_revision: str = WAV2VEC2_REVISION,
    local_dir: Path | None = None,
    verify: bool = True,
    download: Downloader | None = None,
) -> str:
    """Download (or copy) the pretrained backbone into ``out`` and make it load offline.

    Args:
        out: the backbone folder to write.
        speechbrain_repo: hub repository of the SpeechBrain emotion classifier.
        speechbrain_revision: its commit (or tag/branch; a commit pins it).
        wav2vec2_repo: hub repository of the wav2vec2 its hparams build on.
        wav2vec2_revision: its commit.
        local_dir: copy this folder (same layout as ``out``) instead of downloading.
        verify: load the result (:func:`~serhpo.backbones.speechbrain_io.load_backbone`)
            before returning.
        download: the download function (``huggingface_hub.snapshot_download``; tests
            replace it).

    Returns:
        The folder's checksum (also in ``out/checksum.sha256``).

    Raises:
        UserError: when the hub cannot be reached or the files are not the expected ones.

    Example:
        >>> fetch_backbone(Path("resources/models/wav2vec2"))  # doctest: +SKIP
        '3f0c...'
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if local_dir is not None:
        _copy_local(Path(local_dir), out)
    else:
        if download is None:
            from huggingface_hub import snapshot_download as download
        _download(
            download,
            repo_id=speechbrain_repo,
            revision=speechbrain_revision,
            local_dir=out,
            patterns=_SPEECHBRAIN_FILES,
        )
        _download(
            download,
            repo_id=wav2vec2_repo,
            revision=wav2vec2_revision,
            local_dir=out / WAV2VEC2_SUBDIR,
            patterns=_WAV2VEC2_FILES,
        )
    original = out / ORIGINAL_HYPERPARAMS
    if not original.is_file():
        if not (out / HYPERPARAMS).is_file():
            raise UserError(
                f"{out} has no {HYPERPARAMS} after the download/copy; expected "
                f"{speechbrain_repo}'s files there. Check --local-dir or the repository."
            )
        shutil.copyfile(out / HYPERPARAMS, original)
    localized = localize_hyperparams(
        original.read_text(),
        folder=out,
        hub_ids={wav2vec2_repo: WAV2VEC2_SUBDIR, speechbrain_repo: ""},
    )
    (out / HYPERPARAMS).write_text(localized)
    check_backbone_folder(out)
    if verify:
        # serhpo's own construction, which never evaluates the (possibly copied) YAML.
        backbone = load_backbone(out)
        log.info(
            "loaded %s offline: wav2vec2 of width %d, IEMOCAP head %s",
            out,
            backbone.model.config.hidden_size,
            tuple(backbone.head_weight.shape),
        )
    provenance = {
        "kind": "pretrained",
        "speechbrain": {"repo": speechbrain_repo, "revision": speechbrain_revision},
        "wav2vec2": {"repo": wav2vec2_repo, "revision": wav2vec2_revision},
        "copied_from": None if local_dir is None else str(local_dir),
    }
    return write_checksum(out, provenance=provenance)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo fetch-backbone``."""
    parser.add_argument("out", type=Path, help="backbone folder to write")
    parser.add_argument(
        "--speechbrain-repo",
        default=SPEECHBRAIN_REPO,
        help="Hugging Face repository of the SpeechBrain emotion model",
    )
    parser.add_argument(
        "--speechbrain-revision", default=SPEECHBRAIN_REVISION, help="commit to download"
    )
    parser.add_argument(
        "--wav2vec2-repo",
        default=WAV2VEC2_REPO,
        help="Hugging Face repository of the wav2vec2 encoder it is built on",
    )
    parser.add_argument("--wav2vec2-revision", default=WAV2VEC2_REVISION, help="commit to download")
    parser.add_argument(
        "--local-dir",
        type=Path,
        default=None,
        help="copy this folder (prepared elsewhere, same layout) instead of downloading",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the offline loading check at the end"
    )


def run(args: argparse.Namespace) -> int:
    """Fetch the backbone; print its checksum."""
    key = fetch_backbone(
        args.out,
        speechbrain_repo=args.speechbrain_repo,
        speechbrain_revision=args.speechbrain_revision,
        wav2vec2_repo=args.wav2vec2_repo,
        wav2vec2_revision=args.wav2vec2_revision,
        local_dir=args.local_dir,
        verify=not args.no_verify,
    )
    print(key)
    return 0
