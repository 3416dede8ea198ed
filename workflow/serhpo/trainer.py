"""The training loop: fit one configuration on cached features, and score with the result.

One fit: build the model family, fetch its frozen features from the cache
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

The training keys are :class:`serhpo.training.TrainingConfig`; building a study's data and
objective from a config is :mod:`serhpo.objective`; saving a model folder is
:mod:`serhpo.model_io`.

Example:
    >>> outcome = fit({"lr": 1e-3, "epochs": 3, "arch": "cnn"}, data, seed=0)  # doctest: +SKIP
    >>> outcome.result.status  # doctest: +SKIP
    <TrialStatus.COMPLETE: 'complete'>
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from serhpo.data import FeatureItem, Preprocessing, SplitData, Utterance, batches, collate
from serhpo.features import FeatureCache, NonFiniteFeatureError
from serhpo.metrics import balanced_accuracy, classification_scores
from serhpo.models import build_model
from serhpo.models.base import SERModel
from serhpo.normalisation import normalise_items
from serhpo.training import TrainingConfig
from serhpo.trial import EpochReporter, TrialResult, TrialStatus, never_prune

log = logging.getLogger(__name__)


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
def torch_settings(*, deterministic: bool | None = None, threads: int | None) -> Iterator[None]:
    """Set torch's deterministic algorithms and CPU threads for a block, then restore them.

    ``None`` leaves a setting as it is.

    Example:
        >>> with torch_settings(threads=1):
        ...     torch.get_num_threads()
        1
    """
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_threads = torch.get_num_threads()
    if deterministic is not None:
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if deterministic is not None:
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
        params: training keys (:class:`~serhpo.training.TrainingConfig`) and the model
            family's parameters (``arch``, ``embedding_size``, ...), in one mapping.
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
        ... # doctest: +SKIP
        >>> outcome.result.history  # doctest: +SKIP
        [0.42, 0.55, 0.61]
    """
    config, model_params = TrainingConfig.split_params(params)
    with torch_settings(deterministic=config.deterministic, threads=config.threads):
        run = _Fit(
            config,
            model_params,
            data,
            seed=seed,
            train_parts=[train_part] if isinstance(train_part, str) else list(train_part),
            valid_part=valid_part,
        )
        return run.epochs(report)


class _Fit:
    """One fit's state: the model, its optimiser, the parts and what the epochs recorded.

    Built in the order the trainer always drew its random numbers (seed, model, optimiser,
    data order), so that a seed gives the same trial as before this was a class.
    """

    def __init__(
        self,
        config: TrainingConfig,
        model_params: dict[str, Any],
        data: TrainingData,
        *,
        seed: int,
        train_parts: list[str],
        valid_part: str | None,
    ) -> None:
        self.started = time.perf_counter()
        seed_everything(seed)
        self.config, self.data, self.valid_part = config, data, valid_part
        self.device = config.torch_device()
        self.model = build_model(
            data.backbone,
            num_classes=len(data.split.labels),
            params=model_params,
            backbone_dir=data.backbone_dir,
        ).to(self.device)
        self.preprocessing = Preprocessing(maxlen=config.maxlen, padding=config.padding)
        self.train_utterances = [u for part in train_parts for u in data.split.parts[part]]
        self.valid_utterances = data.split.parts[valid_part] if valid_part else []
        self.train_targets = torch.as_tensor(
            np.concatenate([data.split.targets(part) for part in train_parts])
        )
        self.valid_targets = data.split.targets(valid_part) if valid_part else np.array([])

        # Only the stages this trial runs: a family may build parts lazily (wav2vec2's copy).
        stages_run = dict.fromkeys(
            self.model.stage_for_epoch(epoch, unfreeze=config.unfreeze)
            for epoch in range(1, config.epochs + 1)
        )
        self.trainable = list(
            {id(p): p for s in stages_run for p in self.model.trainable_parameters(s)}.values()
        )
        self.optimizer = torch.optim.AdamW(
            self.trainable, lr=config.lr, weight_decay=config.weight_decay
        )
        steps_per_epoch = math.ceil(len(self.train_utterances) / config.batch_size)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer,
            T_max=config.epochs * steps_per_epoch,
            eta_min=config.lr * config.min_lr_ratio,
        )
        self.loss_function = nn.CrossEntropyLoss(weight=self._class_weights())
        self.order = torch.Generator().manual_seed(seed)

        self.history: list[float] = []
        self.extra: dict[str, float | int | str] = {"seconds_features": 0.0, "seconds_train": 0.0}
        self.adapted: set[str] = set()
        self.scores: dict[str, Any] = {}
        self.closed_form = False  # fitted at once (a scikit-learn head): one epoch, no steps

    def _class_weights(self) -> torch.Tensor | None:
        if not self.config.class_weights:
            return None
        counts = torch.bincount(self.train_targets, minlength=self.model.num_classes).float()
        weights = counts.sum() / (counts.clamp_min(1) * (counts > 0).sum())
        return weights.to(self.config.torch_device())

    def finish(self, status: TrialStatus, reason: str = "") -> FitOutcome:
        """The outcome with the history so far (a failure's value is NaN)."""
        extra = self.extra
        extra["epochs_run"] = len(self.history)
        extra["seconds"] = round(time.perf_counter() - self.started, 3)
        extra["seconds_features"] = round(float(extra["seconds_features"]), 3)
        extra["seconds_train"] = round(float(extra["seconds_train"]), 3)
        if status == TrialStatus.FAILED:
            value = math.nan
            log.warning("trial failed: %s", reason)
        else:
            value = self.history[-1] if self.history else math.nan
        result = TrialResult(
            value=value, status=status, reason=reason, history=list(self.history), extra=extra
        )
        return FitOutcome(
            result=result, model=self.model.cpu(), config=self.config, scores=self.scores
        )

    def epochs(self, report: EpochReporter) -> FitOutcome:
        """Run the epochs: features, training steps, scoring and the stop rules of each."""
        for epoch in range(1, self.config.epochs + 1):
            stage = self.model.stage_for_epoch(epoch, unfreeze=self.config.unfreeze)
            self.model.set_stage(stage)
            try:
                train_items, valid_items = self._features(stage)
            except NonFiniteFeatureError as error:  # the audio's fault, not the learning rate's
                return self.finish(TrialStatus.FAILED, f"non-finite features: {error}")
            self._adapt(stage, train_items)
            self.extra["stage"] = stage
            failure = self._train_epoch(stage, epoch, train_items)
            if failure:
                return self.finish(TrialStatus.FAILED, failure)
            if not self.valid_part:
                if self.closed_form:
                    break
                continue
            failure, bca = self._score(stage, epoch, valid_items)
            if failure:
                return self.finish(TrialStatus.FAILED, failure)
            if report(epoch, bca):
                return self.finish(
                    TrialStatus.PRUNED, f"pruned after epoch {epoch} (BCA {bca:.3f})"
                )
            if self.closed_form:
                break  # fitted once, scored once: a history of one value
        return self.finish(TrialStatus.COMPLETE)

    def _features(self, stage: str) -> tuple[list[FeatureItem], list[FeatureItem]]:
        """The train and valid parts' frozen features of ``stage``, normalised as configured."""
        feature_start = time.perf_counter()
        feature = self.model.frozen_feature(stage)
        cache, preprocessing = self.data.cache, self.preprocessing
        train_items = cache.get_many(feature, self.train_utterances, preprocessing)
        valid_items = cache.get_many(feature, self.valid_utterances, preprocessing)
        mode = self.config.normalise
        if mode != "none" and not feature.normalisable:
            raise ValueError(
                f"normalise {mode!r} cannot apply to the {feature.name} feature of "
                f"stage {stage} (its network expects it as computed); use normalise none"
            )
        if mode != "none":  # each part with its own statistics (unsupervised)
            train_items = normalise_items(
                train_items, self.train_utterances, mode=mode, sequence=feature.sequence
            )
            valid_items = normalise_items(
                valid_items, self.valid_utterances, mode=mode, sequence=feature.sequence
            )
        self.extra["seconds_features"] += time.perf_counter() - feature_start
        return train_items, valid_items

    def _adapt(self, stage: str, train_items: list[FeatureItem]) -> None:
        """On a stage's first epoch: let the model adapt to (or fit in closed form on) it."""
        if stage in self.adapted:
            return
        self.model.adapt(stage, train_items)
        train_start = time.perf_counter()
        self.closed_form = self.model.fit_closed_form(stage, train_items, self.train_targets)
        self.extra["seconds_train"] += time.perf_counter() - train_start
        self.model.to(self.device)
        self.adapted.add(stage)

    def _train_epoch(self, stage: str, epoch: int, train_items: list[FeatureItem]) -> str:
        """One epoch of gradient steps; the failure reason on a non-finite loss, else ''."""
        config, model, device = self.config, self.model, self.device
        train_start = time.perf_counter()
        model.train()
        total_loss, count = 0.0, 0
        # A model fitted in closed form (a scikit-learn head) runs no gradient steps.
        for step, indices in enumerate(
            []
            if self.closed_form
            else batches(
                len(train_items), batch_size=config.batch_size, shuffle=True, generator=self.order
            )
        ):
            features, lengths = collate([train_items[i] for i in indices])
            logits = model(features.to(device), lengths.to(device), stage=stage)
            loss = self.loss_function(logits, self.train_targets[indices].to(device))
            if not torch.isfinite(loss):
                self.extra["seconds_train"] += time.perf_counter() - train_start
                return (
                    f"diverged: {loss.item()} loss at epoch {epoch}, step {step + 1} "
                    f"(lr {config.lr:g}, stage {stage}); try a lower learning rate"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.trainable, config.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            total_loss += loss.item() * len(indices)
            count += len(indices)
        self.extra["train_loss"] = round(total_loss / max(count, 1), 6)
        self.extra["seconds_train"] += time.perf_counter() - train_start
        return ""

    def _score(self, stage: str, epoch: int, valid_items: list[FeatureItem]) -> tuple[str, float]:
        """Score the valid part: (failure reason or '', BCA); records history and scores."""
        config, labels = self.config, self.data.split.labels
        logits = predict_logits(
            self.model,
            valid_items,
            stage=stage,
            batch_size=config.eval_batch_size,
            device=self.device,
        )
        if not torch.isfinite(logits).all():
            return (
                f"diverged: non-finite validation outputs at epoch {epoch} (lr {config.lr:g}, "
                f"stage {stage}); try a lower learning rate"
            ), math.nan
        predictions = logits.argmax(dim=1).numpy()
        bca = balanced_accuracy(self.valid_targets, predictions)
        self.history.append(bca)
        self.scores = classification_scores(self.valid_targets, predictions, labels=labels)
        log.info(
            "epoch %d/%d (%s): train loss %.4f, valid BCA %.4f",
            epoch,
            config.epochs,
            stage,
            self.extra["train_loss"],
            bca,
        )
        predicted = set(predictions.tolist())
        if (
            config.collapse_after is not None
            and epoch > config.collapse_after
            and len(predicted) == 1
            and len(set(self.valid_targets.tolist())) > 1
        ):
            label = labels[predicted.pop()]
            return (
                f"collapsed: every validation utterance predicted as {label!r} at epoch "
                f"{epoch} (BCA {bca:.3f}; lr {config.lr:g}, stage {stage}); a diverging run "
                "wants a lower learning rate or a later unfreeze, an undertrained one more "
                "epochs or a higher learning rate"
            ), bca
        return "", bca


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
        >>> predict_logits(model, items).argmax(dim=1)[:3]  # doctest: +SKIP
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
        >>> final = load_final_model(Path("results/final/optuna/model"))  # doctest: +SKIP
        >>> logits = predict_utterances(final.model, test, cache=cache,
        ...                             maxlen=final.preprocessing.maxlen)  # doctest: +SKIP
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
        >>> train_and_evaluate({"lr": 1e-3, "epochs": 2}, data, seed=0).status  # doctest: +SKIP
        <TrialStatus.COMPLETE: 'complete'>
    """
    return fit(params, data, report=report, seed=seed).result
