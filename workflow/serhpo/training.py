"""Train one configuration: the trainer behind every HPO trial and the ``train`` stage.

One trial: build the model family, fetch its frozen features from the cache
(:mod:`serhpo.features`), train the trainable part with AdamW, a cosine-annealed
learning rate (per step) and cross-entropy, and score the validation part after every
epoch with balanced class accuracy (BCA). The study's :data:`~serhpo.trial.EpochReporter`
gets each epoch's BCA and may stop the trial (status ``pruned``). A trial whose loss
turns NaN/inf, or whose validation predictions all fall in one class after the first
epoch(s), stops with status ``failed`` and the reason, instead of spending its other
epochs; so does a trial whose audio gives non-finite features (the reason names the
utterance and the feature; :class:`serhpo.features.NonFiniteFeatureError`). The same seed
and configuration give the same result on the CPU, whatever ran before in the process.

Two-stage families (wav2vec2) run ``unfreeze`` epochs with the encoder frozen, then
fine-tune (:meth:`serhpo.models.base.SERModel.stage_for_epoch`).

Example:
    >>> objective = build_objective(config, split_csv=Path("results/splits/emodb.csv"),
    ...                             cache_dir=Path("results/features"))
    >>> result = objective({"lr": 1e-3, "epochs": 5, "maxlen": 48000, "arch": "cnn"}, never_prune)
    >>> result.status, round(result.value, 2)
    (<TrialStatus.COMPLETE: 'complete'>, 0.71)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from serhpo.config import (
    add_config_arguments,
    coerce,
    read_stage_config,
    section_values,
    settings,
)
from serhpo.data import Preprocessing, SplitData, Utterance, batches, collate, load_split
from serhpo.errors import UserError
from serhpo.features import FeatureCache, NonFiniteFeatureError
from serhpo.metrics import balanced_accuracy, classification_scores
from serhpo.models import build_model
from serhpo.models.base import FeatureItem, SERModel
from serhpo.normalisation import normalise_items
from serhpo.trial import EpochReporter, TrialResult, TrialStatus, never_prune

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """The training keys of a configuration (config ``training:`` and the HPO params).

    Defaults and ranges are the schema's: :func:`serhpo.config.settings` (a config) and
    :meth:`split_params` (a trial's params) fill and validate them; this class has neither.

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

    lr: float
    epochs: int
    unfreeze: int
    maxlen: int | None
    padding: bool
    batch_size: int
    weight_decay: float
    min_lr_ratio: float
    class_weights: bool
    grad_clip: float | None
    collapse_after: int | None
    eval_batch_size: int
    device: str
    deterministic: bool
    threads: int | None
    normalise: str

    @classmethod
    def field_names(cls) -> set[str]:
        """The names of the training keys."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def split_params(cls, params: Mapping[str, Any]) -> tuple[TrainingConfig, dict[str, Any]]:
        """Separate training keys (completed and validated by the schema) from the family's.

        The keys not given get the schema's defaults (config ``training``); values are checked
        against its ranges, since a trial's come from the search space. HPO engines may hand
        over numpy scalars or floats for integers; they are converted.

        Raises:
            UserError: for a value of the wrong type or range.

        Example:
            >>> config, model_params = TrainingConfig.split_params({"lr": 1e-3, "arch": "cnn"})
            >>> config.lr, config.maxlen, model_params
            (0.001, 48000, {'arch': 'cnn'})
        """
        names = cls.field_names()
        values = section_values(
            "training",
            {k: v for k, v in params.items() if k in names},
            fix="Fix training: or search_space: in config.yaml.",
        )
        model_params = {k: coerce(v, {}) for k, v in params.items() if k not in names}
        return cls(**values), model_params

    def torch_device(self) -> torch.device:
        """The device to train on."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class TrainingData:
    """What every trial of a study shares: the split's utterances and the feature cache.

    Attributes:
        split: the train and valid parts (never test while tuning).
        cache: the feature cache (its in-memory copy is shared by the trials).
        backbone: the model family (config ``backbone.name``).
        backbone_dir: the pretrained model's folder, for families that have one.
    """

    split: SplitData
    cache: FeatureCache
    backbone: str
    backbone_dir: Path | None = None


@dataclass
class FitOutcome:
    """A trained model with its trial result and the last validation scores.

    Attributes:
        result: the trial result (status, BCA per epoch, reason).
        model: the model as trained (after the last epoch run).
        config: the training keys used.
        scores: :func:`serhpo.metrics.classification_scores` of the last epoch run
            (empty when the trial failed before scoring).
    """

    result: TrialResult
    model: SERModel
    config: TrainingConfig
    scores: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators.

    Example:
        >>> seed_everything(0); a = torch.rand(1); seed_everything(0)
        >>> bool(torch.rand(1) == a)
        True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _torch_settings(*, deterministic: bool, threads: int | None) -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
        torch.set_num_threads(previous_threads)


def fit(
    params: Mapping[str, Any],
    data: TrainingData,
    *,
    report: EpochReporter = never_prune,
    seed: int = 0,
    train_part: str | Sequence[str] = "train",
    valid_part: str | None = "valid",
) -> FitOutcome:
    """Train one configuration and keep the model (the final retraining uses this).

    Args:
        params: training keys (:class:`TrainingConfig`) and the model family's
            parameters (``arch``, ``embedding_size``, ...), in one mapping.
        data: the split and the feature cache.
        report: called after each epoch with (epoch, validation BCA); True stops the trial.
        seed: seeds the model's initialisation, dropout and the data order.
        train_part: the part to train on, or several (``("train", "valid")`` for a final
            retraining on all development data).
        valid_part: the part scored after each epoch; ``None`` trains without scoring
            (the result's value is then NaN and no collapse check runs).

    Returns:
        The outcome; failures (NaN/inf loss, collapse) are a ``failed`` result, not an
        exception.

    Raises:
        UserError: for bad parameters.

    Example:
        >>> outcome = fit({"lr": 1e-3, "epochs": 3, "arch": "cnn"}, data, seed=0)
        >>> outcome.result.history
        [0.42, 0.55, 0.61]
    """
    config, model_params = TrainingConfig.split_params(params)
    with _torch_settings(deterministic=config.deterministic, threads=config.threads):
        return _fit(
            config,
            model_params,
            data,
            report=report,
            seed=seed,
            train_part=train_part,
            valid_part=valid_part,
        )


def _fit(
    config: TrainingConfig,
    model_params: dict[str, Any],
    data: TrainingData,
    *,
    report: EpochReporter,
    seed: int,
    train_part: str | Sequence[str],
    valid_part: str | None,
) -> FitOutcome:
    started = time.perf_counter()
    seed_everything(seed)
    device = config.torch_device()
    model = build_model(
        data.backbone,
        num_classes=len(data.split.labels),
        params=model_params,
        backbone_dir=data.backbone_dir,
    ).to(device)
    preprocessing = Preprocessing(maxlen=config.maxlen, padding=config.padding)
    train_parts = [train_part] if isinstance(train_part, str) else list(train_part)
    train_utterances = [u for part in train_parts for u in data.split.parts[part]]
    valid_utterances = data.split.parts[valid_part] if valid_part else []
    train_targets = torch.as_tensor(
        np.concatenate([data.split.targets(part) for part in train_parts])
    )
    valid_targets = data.split.targets(valid_part) if valid_part else np.array([])

    # Only the stages this trial runs: a family may build parts lazily (wav2vec2's encoder copy).
    stages_run = dict.fromkeys(
        model.stage_for_epoch(epoch, unfreeze=config.unfreeze)
        for epoch in range(1, config.epochs + 1)
    )
    all_trainable = {id(p): p for s in stages_run for p in model.trainable_parameters(s)}
    optimizer = torch.optim.AdamW(
        list(all_trainable.values()), lr=config.lr, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_utterances) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch, eta_min=config.lr * config.min_lr_ratio
    )
    loss_function = nn.CrossEntropyLoss(weight=_class_weights(config, train_targets, model))
    order = torch.Generator().manual_seed(seed)

    history: list[float] = []
    extra: dict[str, float | int | str] = {"seconds_features": 0.0, "seconds_train": 0.0}
    adapted: set[str] = set()
    scores: dict[str, Any] = {}
    closed_form = False  # fitted at once (a scikit-learn head): one epoch, no gradient steps

    def finish(status: TrialStatus, reason: str = "") -> FitOutcome:
        extra["epochs_run"] = len(history)
        extra["seconds"] = round(time.perf_counter() - started, 3)
        extra["seconds_features"] = round(float(extra["seconds_features"]), 3)
        extra["seconds_train"] = round(float(extra["seconds_train"]), 3)
        if status == TrialStatus.FAILED:
            value = math.nan
            log.warning("trial failed: %s", reason)
        else:
            value = history[-1] if history else math.nan
        result = TrialResult(
            value=value, status=status, reason=reason, history=list(history), extra=extra
        )
        return FitOutcome(result=result, model=model.cpu(), config=config, scores=scores)

    for epoch in range(1, config.epochs + 1):
        stage = model.stage_for_epoch(epoch, unfreeze=config.unfreeze)
        model.set_stage(stage)
        feature_start = time.perf_counter()
        feature = model.frozen_feature(stage)
        try:
            train_items = data.cache.get_many(feature, train_utterances, preprocessing)
            valid_items = data.cache.get_many(feature, valid_utterances, preprocessing)
        except NonFiniteFeatureError as error:  # the audio's fault, not the learning rate's
            return finish(TrialStatus.FAILED, f"non-finite features: {error}")
        if config.normalise != "none" and not feature.normalisable:
            raise ValueError(
                f"normalise {config.normalise!r} cannot apply to the {feature.name} feature of "
                f"stage {stage} (its network expects it as computed); use normalise none"
            )
        if config.normalise != "none":  # each part with its own statistics (unsupervised)
            train_items = normalise_items(
                train_items, train_utterances, mode=config.normalise, sequence=feature.sequence
            )
            valid_items = normalise_items(
                valid_items, valid_utterances, mode=config.normalise, sequence=feature.sequence
            )
        extra["seconds_features"] += time.perf_counter() - feature_start
        if stage not in adapted:
            model.adapt(stage, train_items)
            train_start = time.perf_counter()
            closed_form = model.fit_closed_form(stage, train_items, train_targets)
            extra["seconds_train"] += time.perf_counter() - train_start
            model.to(device)
            adapted.add(stage)
        extra["stage"] = stage

        train_start = time.perf_counter()
        model.train()
        total_loss, count = 0.0, 0
        # A model fitted in closed form (a scikit-learn head) runs no gradient steps.
        for step, indices in enumerate(
            []
            if closed_form
            else batches(
                len(train_items), batch_size=config.batch_size, shuffle=True, generator=order
            )
        ):
            features, lengths = collate([train_items[i] for i in indices])
            logits = model(features.to(device), lengths.to(device), stage=stage)
            loss = loss_function(logits, train_targets[indices].to(device))
            if not torch.isfinite(loss):
                extra["seconds_train"] += time.perf_counter() - train_start
                return finish(
                    TrialStatus.FAILED,
                    f"diverged: {loss.item()} loss at epoch {epoch}, step {step + 1} "
                    f"(lr {config.lr:g}, stage {stage}); try a lower learning rate",
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(list(all_trainable.values()), config.grad_clip)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(indices)
            count += len(indices)
        extra["train_loss"] = round(total_loss / max(count, 1), 6)
        extra["seconds_train"] += time.perf_counter() - train_start

        if not valid_part:
            if closed_form:
                break
            continue
        logits = predict_logits(
            model, valid_items, stage=stage, batch_size=config.eval_batch_size, device=device
        )
        if not torch.isfinite(logits).all():
            return finish(
                TrialStatus.FAILED,
                f"diverged: non-finite validation outputs at epoch {epoch} (lr {config.lr:g}, "
                f"stage {stage}); try a lower learning rate",
            )
        predictions = logits.argmax(dim=1).numpy()
        bca = balanced_accuracy(valid_targets, predictions)
        history.append(bca)
        scores = classification_scores(valid_targets, predictions, labels=data.split.labels)
        log.info(
            "epoch %d/%d (%s): train loss %.4f, valid BCA %.4f",
            epoch,
            config.epochs,
            stage,
            extra["train_loss"],
            bca,
        )
        predicted = set(predictions.tolist())
        if (
            config.collapse_after is not None
            and epoch > config.collapse_after
            and len(predicted) == 1
            and len(set(valid_targets.tolist())) > 1
        ):
            label = data.split.labels[predicted.pop()]
            return finish(
                TrialStatus.FAILED,
                f"collapsed: every validation utterance predicted as {label!r} at epoch "
                f"{epoch} (BCA {bca:.3f}; lr {config.lr:g}, stage {stage}); a diverging run "
                "wants a lower learning rate or a later unfreeze, an undertrained one more "
                "epochs or a higher learning rate",
            )
        if report(epoch, bca):
            return finish(TrialStatus.PRUNED, f"pruned after epoch {epoch} (BCA {bca:.3f})")
        if closed_form:
            break  # fitted once, scored once: a history of one value
    return finish(TrialStatus.COMPLETE)


def _class_weights(
    config: TrainingConfig, targets: torch.Tensor, model: SERModel
) -> torch.Tensor | None:
    if not config.class_weights:
        return None
    counts = torch.bincount(targets, minlength=model.num_classes).float()
    weights = counts.sum() / (counts.clamp_min(1) * (counts > 0).sum())
    return weights.to(config.torch_device())


def predict_logits(
    model: SERModel,
    items: Sequence[FeatureItem],
    *,
    stage: str | None = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The model's logits for cached features, in eval mode, on the CPU.

    Example:
        >>> predict_logits(model, items).argmax(dim=1)[:3]
        tensor([2, 0, 5])
    """
    stage = stage or model.stage
    model.eval()
    outputs = []
    with torch.inference_mode():
        for indices in batches(len(items), batch_size=batch_size, shuffle=False):
            features, lengths = collate([items[i] for i in indices])
            outputs.append(
                model(features.to(device), lengths.to(device), stage=stage).float().cpu()
            )
    if not outputs:
        return torch.empty(0, model.num_classes)
    return torch.cat(outputs)


def predict_utterances(
    model: SERModel,
    utterances: Sequence[Utterance],
    *,
    cache: FeatureCache,
    maxlen: int | None,
    padding: bool = True,
    batch_size: int = 32,
) -> torch.Tensor:
    """Logits of a trained model for utterances (e.g. the test part), via the feature cache.

    Uses the frozen feature of the model's current stage (the last one it trained in) and
    the ``maxlen``/``padding`` it was trained with.

    Example:
        >>> model, meta = load_model(Path("results/final/optuna/model"))
        >>> test = load_split(split_csv, parts=("test",), labels=meta["labels"]).parts["test"]
        >>> logits = predict_utterances(model, test, cache=cache,
        ...                             maxlen=meta["training"]["maxlen"])
    """
    items = cache.get_many(
        model.frozen_feature(model.stage), utterances, Preprocessing(maxlen=maxlen, padding=padding)
    )
    return predict_logits(model, items, batch_size=batch_size)


def train_and_evaluate(
    params: Mapping[str, Any],
    data: TrainingData,
    *,
    report: EpochReporter = never_prune,
    seed: int = 0,
) -> TrialResult:
    """Train on the train part, score the valid part after each epoch; one HPO trial.

    Args:
        params: training keys (lr, epochs, unfreeze, maxlen, padding, batch_size, ...)
            and the family's parameters (arch, embedding_size, dropout, ...).
        data: the split and the feature cache, shared by the trials.
        report: the study's per-epoch reporter (True: stop, status ``pruned``).
        seed: the trial's seed.

    Returns:
        The trial result: value = the last epoch's validation BCA.

    Example:
        >>> train_and_evaluate({"lr": 1e-3, "epochs": 2}, data, seed=0).status
        <TrialStatus.COMPLETE: 'complete'>
    """
    return fit(params, data, report=report, seed=seed).result


def family_settings(
    config: Mapping[str, Any],
    *,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
) -> tuple[str, Path, Path | None]:
    """The model family, the feature cache root and the pretrained folder a stage uses.

    Explicit arguments win over config ``features.cache_dir`` and ``backbone.dir``.

    Example:
        >>> family_settings({"backbone": {"name": "egemaps"}})
        ('egemaps', PosixPath('results/features'), None)
    """
    typed = settings(config)
    return (
        typed.backbone,
        Path(cache_dir) if cache_dir is not None else typed.paths.cache_dir,
        backbone_dir if backbone_dir is not None else typed.paths.backbone_dir,
    )


def build_objective(
    config: Mapping[str, Any],
    *,
    split_csv: Path,
    cache_dir: Path | None = None,
    backbone_dir: Path | None = None,
    root: Path | None = None,
) -> Callable[[dict[str, Any], EpochReporter], TrialResult]:
    """Load a study's data once and return its objective.

    Reads config ``seed``, ``target_labels``, ``backbone.name``, ``model`` (the family's
    fixed parameters) and ``training`` (fixed training keys); a trial's params override
    both. Only the split's train and valid parts are read.

    Args:
        config: the pipeline configuration (a parsed config.yaml).
        split_csv: the split CSV.
        cache_dir: the feature cache root; default config ``features.cache_dir``.
        backbone_dir: the pretrained model's folder, for families that have one; default
            config ``backbone.dir``.
        root: the project root the CSV's paths are relative to (default: cwd).

    Returns:
        ``objective(params, report) -> TrialResult``. A trial that raises anything but
        a :class:`UserError` is returned as ``failed`` with the exception as its reason.

    Example:
        >>> objective = build_objective(config, split_csv=split, cache_dir=Path("results/features"))
        >>> objective({"lr": 3e-4, "epochs": 4, "maxlen": 48000, "arch": "cnn"}, never_prune).ok
        True
    """
    backbone, cache_dir, backbone_dir = family_settings(
        config, cache_dir=cache_dir, backbone_dir=backbone_dir
    )
    completed = settings(config).config
    model_defaults = completed["model"]
    training_defaults = completed["training"]
    seed = completed["seed"]
    labels = config.get("target_labels")  # None: the split's own labels
    split = load_split(split_csv, parts=("train", "valid"), labels=labels, root=root)
    data = TrainingData(
        split=split,
        cache=FeatureCache(cache_dir, backbone=backbone, progress=True),
        backbone=backbone,
        backbone_dir=backbone_dir,
    )

    def objective(params: dict[str, Any], report: EpochReporter) -> TrialResult:
        merged = {**model_defaults, **training_defaults, **params}
        try:
            return train_and_evaluate(merged, data, report=report, seed=seed)
        except UserError:
            raise
        except Exception as error:  # the study goes on; the reason is logged with the trial
            log.exception("trial with params %s raised", params)
            return TrialResult(
                value=math.nan,
                status=TrialStatus.FAILED,
                reason=f"raised {type(error).__name__}: {error}",
            )

    objective.data = data  # type: ignore[attr-defined]  # for callers that want the split
    return objective


def save_model(outcome: FitOutcome, directory: Path, *, data: TrainingData) -> Path:
    """Save a trained model: ``model.pt`` (state dict) and ``model.json`` (how to rebuild it).

    Example:
        >>> save_model(outcome, Path("results/final/optuna/model"), data=data)
        PosixPath('results/final/optuna/model/model.pt')
    """
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "model.pt"
    torch.save(outcome.model.state_dict(), weights)
    metadata = {
        "backbone": data.backbone,
        "labels": list(data.split.labels),
        "model_params": outcome.model.params,
        "training": dataclasses.asdict(outcome.config),
        "stage": outcome.model.stage,
        "result": dataclasses.asdict(outcome.result),
    }
    (directory / "model.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    return weights


def load_model(directory: Path, *, backbone_dir: Path | None = None) -> tuple[SERModel, dict]:
    """Rebuild a model saved by :func:`save_model`; return it (eval mode) and its metadata.

    Example:
        >>> model, metadata = load_model(Path("results/final/optuna/model"))
        >>> metadata["labels"][:2]
        ['anger', 'boredom']
    """
    metadata = json.loads((directory / "model.json").read_text())
    model = build_model(
        metadata["backbone"],
        num_classes=len(metadata["labels"]),
        params=metadata["model_params"],
        backbone_dir=backbone_dir,
    )
    state = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.set_stage(metadata["stage"])
    model.eval()
    return model, metadata


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
        "--cache-dir", type=Path, help="feature cache root; overrides config features.cache_dir"
    )
    parser.add_argument("--seed", type=int, help="overrides config seed")
    parser.add_argument("--fold", type=int, help="validate on this fold of the split's folds")
    parser.add_argument("--output", type=Path, help="write the scores JSON here")
    parser.add_argument("--model-dir", type=Path, help="save the trained model here")


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo train``: train one configuration, print its validation scores as JSON."""
    config = read_stage_config(args.config, args.config_json)
    backbone, cache_dir, backbone_dir = family_settings(
        config, cache_dir=args.cache_dir, backbone_dir=args.backbone_dir
    )
    backbone = args.backbone or backbone
    seed = args.seed if args.seed is not None else config["seed"]
    split = load_split(
        args.split_csv, parts=("train", "valid"), labels=config["target_labels"], fold=args.fold
    )
    data = TrainingData(
        split=split,
        cache=FeatureCache(cache_dir, backbone=backbone, progress=True),
        backbone=backbone,
        backbone_dir=backbone_dir,
    )
    params = {**config["model"], **config["training"], **dict(args.param)}
    outcome = fit(params, data, seed=seed)
    result = dataclasses.asdict(outcome.result)
    result["value"] = None if math.isnan(result["value"]) else result["value"]  # valid JSON
    summary = {
        "backbone": backbone,
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
    if args.model_dir:
        save_model(outcome, args.model_dir, data=data)
    return 0 if outcome.result.status != TrialStatus.FAILED else 1
