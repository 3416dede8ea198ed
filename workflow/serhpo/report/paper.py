"""The reference paper's own figures, for side-by-side rows in the report's tables.

Copied from Golbaghi & Zhou, "Enhancing speech emotion recognition via fine-tuning pre-trained
models and hyper-parameter optimisation" (arXiv 2510.07052, 2025), Tables 3-6. The paper used a
random label-stratified 80/20 split of EmoDB (speakers shared) and selected its configurations on
the same 20 % it reports, so its BCA values are not held-out test scores. Trial numbers are the
paper's own (counted from 1).

Example:
    >>> PAPER_TIME_TO_THRESHOLD["ax"][0.8]
    (2.4, 2)
    >>> PAPER_ZERO_SHOT["ravdess"]
    (0.18, 0.44)
"""

from __future__ import annotations

#: How every table cites these numbers.
PAPER_CITATION = "Golbaghi & Zhou (2025), arXiv 2510.07052"
#: The paper's split protocol (random, label-stratified, speakers shared).
PAPER_PROTOCOL = "stratified"

#: Table 3: engine -> BCA threshold -> (minutes, trial counted from 1 as the paper does) at
#: which the threshold was first exceeded.
PAPER_TIME_TO_THRESHOLD: dict[str, dict[float, tuple[float, int]]] = {
    "grid": {0.8: (1056.0, 101), 0.9: (1680.0, 143)},
    "optuna": {0.8: (7.8, 4), 0.9: (185.3, 15)},
    "hyperopt": {0.8: (6.4, 5), 0.9: (15.0, 11)},
    "ax": {0.8: (2.4, 2), 0.9: (2.4, 2)},
}

#: Table 4: engine -> best configuration and its BCA (on the split used for selection and test).
PAPER_BEST_CONFIG: dict[str, dict[str, float | int]] = {
    "optuna": {"lr": 8.89e-6, "epochs": 4, "unfreeze": 1, "maxlen": 64000, "bca": 0.93},
    "hyperopt": {"lr": 2.59e-5, "epochs": 8, "unfreeze": 4, "maxlen": 80000, "bca": 0.97},
    "ax": {"lr": 2.28e-5, "epochs": 9, "unfreeze": 0, "maxlen": 80000, "bca": 0.96},
}

#: Table 5: engine -> best BCA, minutes to reach it and efficiency E = BCA / minutes
#: (None where the paper gives no number; grid's E is not stated, only "0.98 after 1680 min").
PAPER_EFFICIENCY: dict[str, dict[str, float | None]] = {
    "ax": {"bca": 0.96, "minutes": None, "efficiency": 0.0872},
    "hyperopt": {"bca": 0.97, "minutes": None, "efficiency": 0.0646},
    "optuna": {"bca": 0.93, "minutes": None, "efficiency": 0.005},
    "grid": {"bca": 0.98, "minutes": 1680.0, "efficiency": None},
}

#: Table 6: corpus (config name) -> (zero-shot BCA of the pretrained model, BCA after tuning).
PAPER_ZERO_SHOT: dict[str, tuple[float, float]] = {
    "emodb": (0.11, 0.96),
    "cremad": (0.13, 0.38),
    "ravdess": (0.18, 0.44),
}
