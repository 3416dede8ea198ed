"""The training keys of a configuration, and ``serhpo train``: train one configuration.

:class:`TrainingConfig` holds the training keys (config ``training:`` and a trial's
parameters). The loop that trains with them is :mod:`serhpo.trainer`; building a stage's
data and objective from a config is :mod:`serhpo.objective`; model folders are
:mod:`serhpo.model_io`.

Example:
    $ serhpo train results/splits/emodb.csv --config config.yaml --param lr=1e-3 \\
        --param epochs=5 --model-dir /tmp/model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from serhpo.config import add_config_arguments, read_stage_config
from serhpo.errors import UserError
from serhpo.normalisation import NORMALISE_MODES
from serhpo.trial import TrialStatus

log = logging.getLogger(__name__)

#: Default model family when config has no ``backbone.name``.
DEFAULT_BACKBONE = "logmel"

#: Default feature cache root (config ``features.cache_dir``).
DEFAULT_CACHE_DIR = "results/features"


@dataclass(frozen=True)
class TrainingConfig:
    """The training keys of a configuration (config ``training:`` and the HPO params).

    Attributes:
        lr: peak learning rate of AdamW.
        epochs: epochs to run.
        unfreeze: epochs with the encoder frozen before fine-tuning (two-stage families).
        maxlen: truncate utterances to this many samples (``None``: keep them whole).
        padding: zero-pad shorter utterances to ``maxlen`` (the paper: on).
        batch_size: utterances per optimiser step (the paper: 1).
        weight_decay: AdamW's decoupled weight decay.
        min_lr_ratio: the cosine schedule ends at ``lr * min_lr_ratio``.
        class_weights: weight the cross-entropy by inverse class frequency (off: the paper).
        grad_clip: clip the gradient norm to this (``None``: no clipping).
        collapse_after: from the epoch after this one, a trial whose validation
            predictions all fall in one class fails as collapsed (``None``: never).
        eval_batch_size: utterances per forward pass when scoring.
        device: ``cpu``, ``cuda`` or ``auto`` (``cuda`` when available).
        deterministic: ask torch for deterministic algorithms.
        threads: torch CPU threads while training (``None``: torch's default); small
            models train several times faster on 1 thread than on 2 busy cores.
        normalise: standardise the features per ``corpus`` or per ``speaker`` (each part
            with its own statistics, never labels; :mod:`serhpo.normalisation`), or ``none``.
    """

    lr: float = 1e-4
    epochs: int = 5
    unfreeze: int = 0
    maxlen: int | None = 48000
    padding: bool = True
    batch_size: int = 1
    weight_decay: float = 0.01
    min_lr_ratio: float = 0.0
    class_weights: bool = False
    grad_clip: float | None = None
    collapse_after: int | None = 1
    eval_batch_size: int = 32
    device: str = "cpu"
    deterministic: bool = True
    threads: int | None = None
    normalise: str = "none"

    @classmethod
    def field_names(cls) -> set[str]:
        """The names of the training keys."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def split_params(cls, params: Mapping[str, Any]) -> tuple[TrainingConfig, dict[str, Any]]:
        """Separate training keys (checked and converted) from the model family's keys.

        HPO engines may hand over numpy scalars or floats for integers; they are converted.

        Raises:
            UserError: for a value of the wrong type or range.

        Example:
            >>> config, model_params = TrainingConfig.split_params({"lr": 1e-3, "arch": "cnn"})
            >>> config.lr, model_params
            (0.001, {'arch': 'cnn'})
        """
        training = {k: v for k, v in params.items() if k in cls.field_names()}
        model_params = {k: _plain(v) for k, v in params.items() if k not in cls.field_names()}
        converted: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if item.name in training:
                converted[item.name] = _convert(item.name, training[item.name], item.default)
        config = cls(**converted)
        config.check()
        return config, model_params

    def check(self) -> None:
        """Raise :class:`UserError` for values out of range."""
        problems = []
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number, got {self.lr}")
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1, got {self.epochs}")
        if self.unfreeze < 0:
            problems.append(f"unfreeze must be 0 or more, got {self.unfreeze}")
        if self.maxlen is not None and self.maxlen < 400:
            problems.append(f"maxlen must be at least 400 samples or null, got {self.maxlen}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be at least 1 or null, got {self.threads}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            problems.append("batch_size and eval_batch_size must be at least 1")
        if self.normalise not in NORMALISE_MODES:
            problems.append(
                f"normalise must be one of {list(NORMALISE_MODES)}, got {self.normalise!r}"
            )
        if self.device not in {"cpu", "cuda", "auto"} and not self.device.startswith("cuda:"):
            problems.append(f"device must be cpu, cuda or auto, got {self.device!r}")
        if problems:
            raise UserError(
                "bad training configuration: "
                + "; ".join(problems)
                + ". Fix training: or search_space: in config.yaml."
            )

    def torch_device(self) -> torch.device:
        """The device to train on."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _convert(name: str, value: Any, default: Any) -> Any:
    value = _plain(value)
    try:
        if name in {"maxlen", "grad_clip", "collapse_after", "threads"} and value in (
            None,
            "none",
            "null",
        ):
            return None
        if name in {"padding", "class_weights", "deterministic"}:
            if isinstance(value, str):
                return value.lower() in {"1", "true", "on", "yes"}
            return bool(value)
        if name in {
            "epochs",
            "unfreeze",
            "maxlen",
            "batch_size",
            "collapse_after",
            "eval_batch_size",
            "threads",
        }:
            number = float(value)
            if number != round(number):
                raise ValueError(f"{value!r} is not a whole number")
            return int(round(number))
        if name in {"lr", "weight_decay", "min_lr_ratio", "grad_clip"}:
            return float(value)
        return type(default)(value) if default is not None else value
    except (TypeError, ValueError) as error:
        raise UserError(
            f"training key {name!r} got {value!r} ({error}); expected a value like "
            f"{default!r}. Fix it in config.yaml (training: or search_space:)."
        ) from None


# ---------------------------------------------------------------- CLI


def _param(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo train``."""
    parser.add_argument("split_csv", type=Path, help="the split CSV (results/splits/{corpus}.csv)")
    add_config_arguments(parser)
    parser.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training or model parameter, e.g. lr=1e-4 arch=cnn (repeatable; YAML values)",
    )
    parser.add_argument("--backbone", help="model family; overrides config backbone.name")
    parser.add_argument("--backbone-dir", type=Path, help="the pretrained model's folder")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(DEFAULT_CACHE_DIR), help="feature cache root"
    )
    parser.add_argument("--seed", type=int, help="overrides config seed")
    parser.add_argument("--fold", type=int, help="validate on this fold of the split's folds")
    parser.add_argument("--output", type=Path, help="write the scores JSON here")
    parser.add_argument("--model-dir", type=Path, help="save the trained model here")


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo train``: train one configuration, print its validation scores as JSON."""
    # Imported here: these modules build on TrainingConfig above (a cycle at the top).
    from serhpo.model_io import audio_provenance, save_model
    from serhpo.objective import config_seed, training_data, trial_params
    from serhpo.trainer import fit

    config = read_stage_config(args.config, args.config_json)
    if args.backbone:
        config = {**config, "backbone": {**(config.get("backbone") or {}), "name": args.backbone}}
    data = training_data(
        config,
        split=args.split_csv,
        fold=args.fold,
        cache_dir=args.cache_dir,
        backbone_dir=args.backbone_dir,
    )
    seed = args.seed if args.seed is not None else config_seed(config)
    params = trial_params(config, dict(args.param))
    outcome = fit(params, data, seed=seed)
    result = dataclasses.asdict(outcome.result)
    result["value"] = None if math.isnan(result["value"]) else result["value"]  # valid JSON
    summary = {
        "backbone": data.backbone,
        "seed": seed,
        "params": params,
        **result,
        "scores": outcome.scores,
    }
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    if args.model_dir:  # the folder serhpo retrain writes, which evaluate and predict read
        provenance = {
            "seed": seed,
            "trained_on": {"split": str(args.split_csv), "parts": ["train"], "fold": args.fold},
            **audio_provenance(config),
        }
        save_model(outcome, args.model_dir, data=data, provenance=provenance)
    return 0 if outcome.result.status != TrialStatus.FAILED else 1
