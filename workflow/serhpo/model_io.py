"""Model folders: the one writer and reader of the files a trained model is kept in.

``serhpo retrain``, ``serhpo train --model-dir``, ``serhpo cv-fold`` callers and the tests
write a model folder with :func:`save_model`; :func:`load_model` reads it back (and
:func:`serhpo.final.load_final_model` wraps it into a ready-to-use
:class:`~serhpo.final.FinalModel`)::

    model/
        model.pt            the state dict (torch.load(..., weights_only=True))
        model.json          how to rebuild it: format, family, parameters, training keys,
                            stage, labels, preprocessing (sample rate, maxlen, padding,
                            frozen feature and its fingerprint), provenance
        label_encoder.txt   the labels in output order (SpeechBrain's CategoricalEncoder format)
        backbone/           families with a backbone folder: a copy of it

Opening a model folder runs none of its contents: ``model.json`` is plain JSON, the weights
are read with ``weights_only=True``, and a backbone folder must lie inside the model folder.

Example:
    >>> save_model(outcome, Path("results/final/optuna/model"), data=data)  # doctest: +SKIP
    PosixPath('results/final/optuna/model')
    >>> model, metadata = load_model(Path("results/final/optuna/model"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import serhpo
from serhpo.backbones.speechbrain_io import check_finite, read_state_dict
from serhpo.data import SAMPLE_RATE
from serhpo.errors import UserError
from serhpo.models import build_model
from serhpo.models.base import SERModel
from serhpo.trainer import FitOutcome, TrainingData

#: Identifies a model folder written by this module, and its layout's version.
MODEL_FORMAT = "serhpo-model"
MODEL_FORMAT_VERSION = 1
METADATA_FILE = "model.json"
WEIGHTS_FILE = "model.pt"
LABEL_ENCODER_FILE = "label_encoder.txt"
BACKBONE_SUBDIR = "backbone"


def save_model(
    outcome: FitOutcome,
    directory: Path,
    *,
    data: TrainingData,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-contained model folder (see the module docstring); return it.

    ``model.pt`` holds the state dict; ``model.json`` how to rebuild the model, the
    preprocessing and ``provenance``; the label encoder and, for families with a backbone
    folder, a copy of it come beside. The folder is written beside ``directory`` and renamed
    into place, so an interrupted run never leaves half a model.

    Example:
        >>> save_model(outcome, Path("results/final/optuna/model"), data=data)
        ... # doctest: +SKIP
        PosixPath('results/final/optuna/model')
    """
    from serhpo.backbones.speechbrain_io import write_label_encoder

    directory = Path(directory)
    partial = directory.with_name(directory.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    model = outcome.model
    torch.save(model.state_dict(), partial / WEIGHTS_FILE)
    feature = model.frozen_feature(model.stage)
    metadata = {
        "backbone": data.backbone,
        "labels": list(data.split.labels),
        "model_params": model.params,
        "training": dataclasses.asdict(outcome.config),
        "stage": model.stage,
        "result": dataclasses.asdict(outcome.result),
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "serhpo_version": serhpo.__version__,
        "torch_version": torch.__version__,
        "weights": WEIGHTS_FILE,
        "preprocessing": {
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "maxlen": outcome.config.maxlen,
            "padding": outcome.config.padding,
            "stage": model.stage,
            "feature": {"name": feature.name, "fingerprint": feature.fingerprint()},
            "feature_params": model.params,
        },
        "backbone_dir": None,
        **dict(provenance or {}),
    }
    metadata = json.loads(json.dumps(metadata, default=str))  # plain JSON values only
    if data.backbone_dir is not None:
        # The backbone's files (hyperparams, checkpoints, label encoder, the transformers
        # folder) travel with the model; hidden folders such as a hub cache do not.
        shutil.copytree(
            data.backbone_dir, partial / BACKBONE_SUBDIR, ignore=shutil.ignore_patterns(".*")
        )
        metadata["backbone_dir"] = BACKBONE_SUBDIR
        checksum = Path(data.backbone_dir) / "checksum.sha256"
        if checksum.is_file():
            metadata["backbone_checksum"] = checksum.read_text().split()[0]
    if hasattr(model, "backbone_record"):  # names the encoder (whisper), copied or embedded
        metadata["backbone_encoder"] = model.backbone_record()
    # No validation score in a final retraining: write null, not NaN (invalid JSON).
    metadata["result"]["value"] = finite_or_none(metadata["result"].get("value"))
    write_label_encoder(partial / LABEL_ENCODER_FILE, tuple(data.split.labels))
    (partial / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)
    return directory


def audio_provenance(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a model folder records of its training audio (config ``audio``).

    ``audio_checks`` (the duration and silence checks that new recordings get; a key the
    config lacks takes :class:`serhpo.audio.AudioChecks`' default when the folder is read)
    and ``loudness`` (the level normalisation that ``serhpo predict`` applies to new files).

    Example:
        >>> audio_provenance({"audio": {"min_duration_s": 0.5, "silence_dbfs": -70}})
        {'audio_checks': {'min_duration_s': 0.5, 'silence_dbfs': -70.0}, 'loudness': {}}
    """
    audio = config.get("audio") or {}
    checks = {key: float(audio[key]) for key in ("min_duration_s", "silence_dbfs") if key in audio}
    # The level normalisation of its training audio: predict applies it to new files.
    return {"audio_checks": checks, "loudness": dict(audio.get("loudness") or {})}


def load_model(directory: Path) -> tuple[SERModel, dict[str, Any]]:
    """Rebuild the model a folder written by :func:`save_model` holds (eval mode, its stage).

    Raises:
        UserError: when the folder is not such a model folder, or a file of it is missing,
            corrupt, of the wrong shape, or holds non-finite weights (the message names it).

    Example:
        >>> model, metadata = load_model(Path("results/final/optuna/model"))  # doctest: +SKIP
        >>> metadata["labels"][:2]  # doctest: +SKIP
        ['anger', 'boredom']
    """
    directory = Path(directory)
    metadata_path = directory / METADATA_FILE
    if not metadata_path.is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise UserError(
            f"{directory} is not a serhpo model folder: it lacks {METADATA_FILE} or "
            f"{WEIGHTS_FILE}. Expected the output of `serhpo retrain` "
            "(results/final/<engine>/model); run the retrain_final rule first."
        )
    metadata = read_model_metadata(metadata_path)
    backbone_dir = model_backbone_dir(directory, metadata)
    model = rebuild_model(directory, metadata, backbone_dir=backbone_dir)
    if metadata.get("backbone_encoder") and hasattr(model, "check_backbone_record"):
        model.check_backbone_record(metadata["backbone_encoder"])
    return model, metadata


def finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


RETRAIN_HINT = (
    "Copy the model folder again from where it was written, or retrain it (serhpo retrain, "
    "or rerun the retrain_final rule)."
)

#: What model.json must hold, with the type each value must have.
_METADATA_KEYS: dict[str, type | tuple[type, ...]] = {
    "backbone": str,
    "labels": list,
    "model_params": dict,
    "stage": str,
    "preprocessing": dict,
}
_PREPROCESSING_KEYS = ("sample_rate", "maxlen", "padding")


def read_model_metadata(path: Path) -> dict[str, Any]:
    """Read and check a model folder's ``model.json``.

    Raises:
        UserError: naming the file when it is not JSON, not written by ``serhpo retrain``,
            or lacks a key (``labels``, ``backbone``, ``model_params``, ``stage``,
            ``preprocessing``) or has one of the wrong type.

    Example:
        >>> read_model_metadata(Path("results/final/optuna/model/model.json"))["labels"][:1]
        ... # doctest: +SKIP
        ['anger']
    """
    path = Path(path)
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(
            f"{path} is not valid JSON ({type(error).__name__}: {error}); it is truncated or "
            f"was edited by hand. {RETRAIN_HINT}"
        ) from None
    if not isinstance(metadata, dict):
        raise UserError(
            f"{path} holds a JSON {type(metadata).__name__}, not an object; expected the "
            f"model.json that `serhpo retrain` writes. {RETRAIN_HINT}"
        )
    if metadata.get("format") != MODEL_FORMAT:
        raise UserError(
            f"{path} has format {metadata.get('format')!r}; expected {MODEL_FORMAT!r} "
            "(written by `serhpo retrain`). Retrain the model with this version of serhpo."
        )
    problems = [
        f"no {key!r}" if key not in metadata else f"{key!r} is not a {kind.__name__}"
        for key, kind in _METADATA_KEYS.items()
        if not isinstance(metadata.get(key), kind)
    ]
    labels = metadata.get("labels")
    if isinstance(labels, list) and (
        not labels
        or not all(isinstance(label, str) and label for label in labels)
        or len(set(labels)) != len(labels)
    ):
        problems.append(f"'labels' is {labels!r}, not a list of distinct label names")
    preprocessing = metadata.get("preprocessing")
    if isinstance(preprocessing, dict):
        problems += [
            f"no 'preprocessing.{key}'" for key in _PREPROCESSING_KEYS if key not in preprocessing
        ]
    if problems:
        raise UserError(
            f"{path} is incomplete: {'; '.join(problems)}. Expected the model.json that "
            f"`serhpo retrain` writes (labels, backbone, model_params, stage, preprocessing). "
            f"{RETRAIN_HINT}"
        )
    return metadata


def model_backbone_dir(directory: Path, metadata: Mapping[str, Any]) -> Path | None:
    """The backbone folder a model folder's ``model.json`` names, checked to lie inside it.

    ``None`` (no ``backbone_dir``) means the family's packaged default (the embedded Whisper)
    or none at all (log-Mel, eGeMAPS).

    Raises:
        UserError: an absolute path, a path with ``..``, or a link that leads out of the
            model folder: a model folder must carry its own backbone.

    Example:
        >>> model_backbone_dir(Path("model"), {"backbone_dir": "backbone"})  # doctest: +SKIP
        PosixPath('/.../model/backbone')
    """
    value = metadata.get("backbone_dir")
    if value is None or value == "":
        return None
    root = Path(directory).resolve()
    resolved = (root / str(value)).resolve() if isinstance(value, str) else None
    if (
        resolved is None
        or Path(value).is_absolute()
        or not resolved.is_relative_to(root)
        or (resolved == root)
    ):
        raise UserError(
            f"{Path(directory) / METADATA_FILE} names the backbone folder {value!r}, which is "
            f"not a folder inside the model folder {directory}"
            + (f" (it leads to {resolved})" if resolved is not None else "")
            + f". A model folder carries its own backbone ({BACKBONE_SUBDIR!r}, as `serhpo "
            "retrain` writes it) or names none (the packaged default). Copy the backbone "
            f"into {Path(directory) / BACKBONE_SUBDIR} and set backbone_dir to "
            f"{BACKBONE_SUBDIR!r}, or retrain the model."
        )
    return resolved


def rebuild_model(
    directory: Path, metadata: Mapping[str, Any], *, backbone_dir: Path | None
) -> SERModel:
    """The model ``model.json`` describes, with ``model.pt``'s weights; errors name the file."""
    model = build_model(
        metadata["backbone"],
        num_classes=len(metadata["labels"]),
        params=metadata["model_params"],
        backbone_dir=backbone_dir,
    )
    weights = directory / WEIGHTS_FILE
    state = read_state_dict(weights, fix=RETRAIN_HINT)
    check_finite(state, path=weights, fix=RETRAIN_HINT)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        detail = " ".join(line.strip() for line in str(error).strip().splitlines()[:3])[:400]
        raise UserError(
            f"{weights} does not fit the model {directory / METADATA_FILE} describes "
            f"({metadata['backbone']}, {len(metadata['labels'])} labels): {detail}. "
            f"{RETRAIN_HINT}"
        ) from None
    if metadata["stage"] not in model.stages:
        raise UserError(
            f"{directory / METADATA_FILE} names the stage {metadata['stage']!r}; the "
            f"{metadata['backbone']} model has {list(model.stages)}. {RETRAIN_HINT}"
        )
    model.set_stage(metadata["stage"])
    model.eval()
    return model
