"""What the report reads: studies' trials.csv and best.yaml, evaluation JSONs and config.

Every reader checks its file against the contract of the stage that wrote it and raises a
:class:`~serhpo.errors.UserError` naming the file, what was found and what was expected.

Example:
    >>> study = read_study(Path("results/hpo/optuna/trials.csv"))  # doctest: +SKIP
    >>> study.engine, len(study.trials)  # doctest: +SKIP
    ('optuna', 15)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serhpo.errors import UserError
from serhpo.hpo.settings import ENGINE_NAMES
from serhpo.hpo.space import DEFAULT_SEARCH_SPACE
from serhpo.hpo.study_files import read_best, read_trials_table

#: Prefix of the parameter columns of trials.csv.
PARAM_PREFIX = "param_"
#: The model name of the backbone's own head, evaluated without tuning (Table 6's zero-shot row).
PRETRAINED_MODEL = "pretrained"
#: Split protocols and how the report describes them.
PROTOCOLS: dict[str, str] = {
    "stratified": (
        "random label-stratified split; the same speakers appear in train, valid and test "
        "(the paper's protocol)"
    ),
    "speaker": "speaker-independent split; no speaker appears in two of train, valid and test",
}
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.8, 0.9)
_REPORT_KEYS = {"thresholds", "paper_figures"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_EVAL_KEYS = ("model", "corpus", "protocol", "part", "zero_shot", "n", "labels", "bca", "confusion")


@dataclass(frozen=True)
class ReportSettings:
    """The config keys the report reads.

    Attributes:
        thresholds: Table 3's validation-BCA thresholds, ascending.
        paper_figures: add the paper's own numbers as rows marked "paper".
        protocol: the split protocol (``split.strategy``) that produced the studies.
        engines: the engines config asked for (``hpo.engines``), to name the missing ones.
        corpora: config's corpora, in config order, to name missing evaluations.
        tune_corpora: the corpora with ``role: tune`` (their test part is Table 4's test BCA).
        param_order: parameter names in the search space's order (plots and columns).
        log_params: parameters drawn on a log axis (``loguniform`` in the search space).
        n_classes: number of target labels (chance-level BCA is ``1 / n_classes``).
    """

    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    paper_figures: bool = True
    protocol: str = "stratified"
    engines: tuple[str, ...] = ENGINE_NAMES[:4]
    corpora: tuple[str, ...] = ()
    tune_corpora: tuple[str, ...] = ()
    param_order: tuple[str, ...] = tuple(DEFAULT_SEARCH_SPACE)
    log_params: frozenset[str] = field(default_factory=lambda: frozenset({"lr"}))
    n_classes: int = 7

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ReportSettings:
        """Read the report's keys from a merged config, with defaults for absent keys.

        Raises:
            UserError: a key has a value of the wrong kind, naming what is allowed.

        Example:
            >>> ReportSettings.from_config({"report": {"thresholds": [0.9, 0.7]}}).thresholds
            (0.7, 0.9)
        """
        report = config.get("report") or {}
        if not isinstance(report, Mapping):
            raise UserError(f"config key report: found {report!r}; expected a mapping.")
        unknown = sorted(set(report) - _REPORT_KEYS)
        if unknown:
            raise UserError(
                f"config key report: unknown key(s) {unknown}; allowed: {sorted(_REPORT_KEYS)}."
            )
        thresholds = report.get("thresholds", list(DEFAULT_THRESHOLDS))
        if (
            not isinstance(thresholds, list)
            or not thresholds
            or not all(
                isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 1
                for t in thresholds
            )
        ):
            raise UserError(
                f"config key report.thresholds: found {thresholds!r}; expected a non-empty list "
                "of validation BCA values in (0, 1], e.g. [0.8, 0.9]."
            )
        paper_figures = report.get("paper_figures", True)
        if not isinstance(paper_figures, bool):
            raise UserError(
                f"config key report.paper_figures: found {paper_figures!r}; expected true or false."
            )
        protocol = (config.get("split") or {}).get("strategy", "stratified")
        if protocol not in PROTOCOLS:
            raise UserError(
                f"config key split.strategy: found {protocol!r}; expected one of {list(PROTOCOLS)}."
            )
        engines = (config.get("hpo") or {}).get("engines", list(ENGINE_NAMES[:4]))
        corpora = config.get("corpora") or {}
        space = config.get("search_space") or DEFAULT_SEARCH_SPACE
        return cls(
            thresholds=tuple(sorted({float(t) for t in thresholds})),
            paper_figures=paper_figures,
            protocol=protocol,
            engines=tuple(engines),
            corpora=tuple(corpora),
            tune_corpora=tuple(
                name
                for name, entry in corpora.items()
                if isinstance(entry, Mapping) and entry.get("role") == "tune"
            ),
            param_order=tuple(space),
            log_params=frozenset(
                name
                for name, spec in space.items()
                if isinstance(spec, Mapping) and spec.get("type") == "loguniform"
            ),
            n_classes=max(2, len(config.get("target_labels") or [None] * 7)),
        )


@dataclass(frozen=True)
class Study:
    """One engine's HPO study as the HPO stage left it.

    Attributes:
        engine: the engine's name (the folder above trials.csv).
        trials: the rows of trials.csv, checked; ``status`` lower-case, numbers as floats.
        best: best.yaml's content, or None when the file is absent.
        path: the trials.csv file.
    """

    engine: str
    trials: pd.DataFrame
    best: Mapping[str, Any] | None
    path: Path

    @property
    def param_names(self) -> list[str]:
        """The study's parameter names (``param_lr`` -> ``lr``)."""
        return [c[len(PARAM_PREFIX) :] for c in self.trials.columns if c.startswith(PARAM_PREFIX)]


def read_study(trials_path: Path) -> Study:
    """Read ``results/hpo/{engine}/trials.csv`` and the best.yaml beside it.

    Example:
        >>> read_study(Path("results/hpo/grid/trials.csv")).engine  # doctest: +SKIP
        'grid'
    """
    engine = trials_path.parent.name
    if not _SAFE_NAME.match(engine):
        raise UserError(
            f"{trials_path}: the engine is named by the folder above trials.csv, found {engine!r}; "
            "expected results/hpo/{engine}/trials.csv."
        )
    return Study(
        engine=engine,
        trials=read_trials_table(trials_path),
        best=read_best(trials_path.with_name("best.yaml"), missing_ok=True),
        path=trials_path,
    )


@dataclass(frozen=True)
class Evaluation:
    """One model's scores on one corpus (``results/eval/{model}/{corpus}.json``).

    Attributes:
        model: an engine's final model, or ``pretrained`` (no tuning).
        corpus: the corpus evaluated.
        protocol: the split protocol of the model's home corpus.
        part: ``test`` (home corpus) or ``all`` (zero-shot corpus).
        zero_shot: True when the model never saw this corpus.
        n: number of utterances scored.
        labels: class names, the confusion matrix' order.
        bca: balanced class accuracy.
        bca_ci95: 95 % confidence interval of the BCA (NaN, NaN when not given).
        accuracy: plain accuracy (NaN when not given).
        macro_f1: macro-averaged F1 (NaN when not given).
        confusion: counts, rows true, columns predicted.
        path: the JSON file.
        label_set: ``shared`` (a zero-shot score on the labels the corpora share) or
            ``all``; ``all`` for JSONs written before the key existed.
        chance: chance-level BCA of that label set (NaN when not given).
        bca_unrestricted: a shared-label score's unrestricted BCA (all outputs, every
            utterance); NaN when there is none.
        normalise: the feature standardisation applied to the scored corpus.
        loudness: the level normalisation of preparation, in words.
    """

    model: str
    corpus: str
    protocol: str
    part: str
    zero_shot: bool
    n: int
    labels: tuple[str, ...]
    bca: float
    bca_ci95: tuple[float, float]
    accuracy: float
    macro_f1: float
    confusion: np.ndarray
    path: Path
    label_set: str = "all"
    chance: float = math.nan
    bca_unrestricted: float = math.nan
    normalise: str = "none"
    loudness: str = "off"


def read_evaluation(path: Path) -> Evaluation:
    """Read and check one evaluation JSON.

    Raises:
        UserError: a key is missing or the confusion matrix does not match the labels.

    Example:
        >>> read_evaluation(Path("results/eval/pretrained/cremad.json")).zero_shot  # doctest: +SKIP
        True
    """
    try:
        with open(path) as stream:
            data = json.load(stream)
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(
            f"{path}: cannot be read as JSON ({error}); rerun the evaluate rule."
        ) from error
    missing = [k for k in _EVAL_KEYS if not isinstance(data, Mapping) or k not in data]
    if missing:
        raise UserError(
            f"{path}: keys {missing} are missing; expected at least {list(_EVAL_KEYS)} as written "
            "by `serhpo evaluate`. Rerun the evaluate rule."
        )
    for key in ("model", "corpus"):
        if not isinstance(data[key], str) or not _SAFE_NAME.match(data[key]):
            raise UserError(
                f"{path}: {key} {data[key]!r} is not a plain name; expected letters, digits, _ . -"
            )
    labels = tuple(str(label) for label in data["labels"])
    confusion = np.asarray(data["confusion"], dtype=np.int64)
    if confusion.shape != (len(labels), len(labels)):
        raise UserError(
            f"{path}: confusion matrix of shape {confusion.shape} for {len(labels)} labels; "
            f"expected {len(labels)} x {len(labels)} (rows true, columns predicted)."
        )
    ci = data.get("bca_ci95") or [math.nan, math.nan]
    return Evaluation(
        model=data["model"],
        corpus=data["corpus"],
        protocol=str(data["protocol"]),
        part=str(data["part"]),
        zero_shot=bool(data["zero_shot"]),
        n=int(data["n"]),
        labels=labels,
        bca=_float(data["bca"]),
        bca_ci95=(_float(ci[0]), _float(ci[1])),
        accuracy=_float(data.get("accuracy")),
        macro_f1=_float(data.get("macro_f1")),
        confusion=confusion,
        path=path,
        label_set=str(data.get("label_set") or "all"),
        chance=_float(data.get("chance")),
        bca_unrestricted=_float((data.get("unrestricted") or {}).get("bca")),
        normalise=str(data.get("normalise") or "none"),
        loudness=str(data.get("loudness") or "off"),
    )


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)
