"""A cheap objective with a known optimum, shaped like the paper's study, for tests and demos.

Validation BCA is a smooth function of the Table 2 parameters (``lr``, ``epochs``,
``unfreeze``, ``maxlen``), highest at :data:`SYNTHETIC_OPTIMUM`; each epoch reports a score
on a saturating learning curve that ends at the trial's final score. It reproduces the
paper's collapsed trials: with a high learning rate and the encoder unfrozen early, every
epoch scores chance level (1/7). Noise is deterministic (seeded by the seed and the
parameters), and an optional sleep per epoch, proportional to ``maxlen``, makes time budgets
and the BCA-versus-seconds trade-off meaningful.

Example:
    >>> objective = SyntheticObjective(seed=0, noise=0.0)
    >>> result = objective(SYNTHETIC_OPTIMUM, lambda epoch, score: False)
    >>> round(result.value, 3), len(result.history)
    (0.97, 8)
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serhpo.trial import EpochReporter, TrialResult, TrialStatus

#: The parameters with the highest noise-free BCA (:data:`PEAK_BCA`).
SYNTHETIC_OPTIMUM: dict[str, Any] = {"lr": 1.2e-5, "epochs": 8, "unfreeze": 1, "maxlen": 80000}
PEAK_BCA = 0.97
CHANCE_BCA = 1.0 / 7.0
#: Learning rates at or above this collapse to chance level when ``unfreeze`` <= 1.
COLLAPSE_LR = 2.0e-4
_LR_WIDTH_DECADES = 0.45
_EPOCH_WIDTH = 3.0
_CURVE_SHARPNESS = 3.0


def is_collapsed(params: Mapping[str, Any]) -> bool:
    """True in the collapse region: high learning rate with the encoder unfrozen early."""
    p = {**SYNTHETIC_OPTIMUM, **params}
    return p["lr"] >= COLLAPSE_LR and p["unfreeze"] <= 1


def expected_bca(params: Mapping[str, Any], epoch: int | None = None) -> float:
    """Noise-free validation BCA after ``epoch`` (default: the last, ``params['epochs']``).

    Parameters missing from ``params`` take their optimal value; others are ignored.

    Example:
        >>> expected_bca({"lr": 1e-3, "unfreeze": 0})  # collapsed
        0.14285714285714285
        >>> expected_bca(SYNTHETIC_OPTIMUM, epoch=1) < expected_bca(SYNTHETIC_OPTIMUM)
        True
    """
    p = {**SYNTHETIC_OPTIMUM, **params}
    epochs = int(p["epochs"])
    epoch = epochs if epoch is None else epoch
    if is_collapsed(p):
        return CHANCE_BCA
    quality = (
        math.exp(
            -0.5
            * ((math.log10(p["lr"]) - math.log10(SYNTHETIC_OPTIMUM["lr"])) / _LR_WIDTH_DECADES) ** 2
        )
        * math.exp(-0.5 * ((epochs - SYNTHETIC_OPTIMUM["epochs"]) / _EPOCH_WIDTH) ** 2)
        * max(0.5, 1.0 - 0.12 * math.log2(p["maxlen"] / SYNTHETIC_OPTIMUM["maxlen"]) ** 2)
        * (1.0 - 0.03 * abs(int(p["unfreeze"]) - SYNTHETIC_OPTIMUM["unfreeze"]))
    )
    final = CHANCE_BCA + (PEAK_BCA - CHANCE_BCA) * quality
    progress = (1 - math.exp(-_CURVE_SHARPNESS * epoch / epochs)) / (
        1 - math.exp(-_CURVE_SHARPNESS)
    )
    return CHANCE_BCA + (final - CHANCE_BCA) * progress


@dataclass(frozen=True)
class SyntheticObjective:
    """An objective ``(params, report) -> TrialResult`` over the Table 2 parameters.

    Attributes:
        seed: seeds the noise (with the parameters): same seed and parameters, same scores.
        noise: standard deviation of the Gaussian noise added to each epoch's score.
        epoch_seconds: sleep per epoch at ``maxlen`` 80000 (scaled linearly with ``maxlen``).
    """

    seed: int = 0
    noise: float = 0.01
    epoch_seconds: float = 0.0

    def __call__(self, params: Mapping[str, Any], report: EpochReporter) -> TrialResult:
        p = {**SYNTHETIC_OPTIMUM, **params}
        rng = np.random.default_rng([self.seed, _digest(params)])
        collapsed = is_collapsed(p)
        history: list[float] = []
        for epoch in range(1, int(p["epochs"]) + 1):
            score = expected_bca(p, epoch)
            if not collapsed:
                score = float(np.clip(score + rng.normal(0.0, self.noise), 0.0, 1.0))
            if self.epoch_seconds > 0:
                time.sleep(self.epoch_seconds * p["maxlen"] / SYNTHETIC_OPTIMUM["maxlen"])
            history.append(score)
            if report(epoch, score):
                return TrialResult(
                    value=score,
                    status=TrialStatus.PRUNED,
                    reason=f"stopped by the study after epoch {epoch}",
                    history=history,
                    extra={"epochs_run": epoch},
                )
        return TrialResult(value=history[-1], history=history, extra={"epochs_run": len(history)})


def _digest(params: Mapping[str, Any]) -> int:
    text = json.dumps({k: repr(v) for k, v in sorted(params.items())})
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
