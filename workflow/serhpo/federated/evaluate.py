"""``serhpo fl-evaluate``: retrain an engine's chosen federated configurations and score them.

From an engine's federated study (trials.csv) two configurations are chosen
(:func:`select_configurations`): ``best``, the highest validation BCA, and ``efficient``,
the cheapest in client CPU seconds whose validation BCA is within ``near_best_margin`` of
the best (the reference study's "1 point"). Each is retrained federated with the train
and valid speakers as clients (no validation scoring, the seed of the study) and scored
like the centralised final models (:func:`serhpo.evaluation.evaluate`): on the home
corpus' test speakers, and zero-shot on every labelled utterance of the other corpora,
with a bootstrap interval. The test part is read here and nowhere else.

Example:
    $ serhpo fl-evaluate --engine optuna --trials results/federated/hpo/optuna/trials.csv \\
        --split results/splits/emodb.csv --zero-shot results/splits/ravdess.csv \\
        --config config.yaml --out results/federated/eval/optuna.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serhpo.config import add_config_arguments, read_stage_config
from serhpo.errors import UserError
from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.trials_log import TrialsLog
from serhpo.trial import TrialStatus

log = logging.getLogger(__name__)

#: The cost a federated study minimises (``extra["cpu_seconds"]`` of its trials).
COST = "cpu_seconds"


def select_configurations(
    trials: Sequence[FinishedTrial], *, margin: float = 0.01
) -> dict[str, FinishedTrial]:
    """The best trial and the cheapest trial within ``margin`` of its validation BCA.

    Ties in BCA go to the cheaper trial, ties in cost to the better one, then the earlier.

    Raises:
        UserError: when no trial completed with a score and a cost.

    Example:
        >>> trials = [
        ...     FinishedTrial(0, {}, 0.80, TrialStatus.COMPLETE, extra={"cpu_seconds": 90.0}),
        ...     FinishedTrial(1, {}, 0.795, TrialStatus.COMPLETE, extra={"cpu_seconds": 10.0}),
        ...     FinishedTrial(2, {}, 0.70, TrialStatus.COMPLETE, extra={"cpu_seconds": 1.0}),
        ... ]
        >>> {name: t.trial for name, t in select_configurations(trials).items()}
        {'best': 0, 'efficient': 1}
    """
    complete = [
        t
        for t in trials
        if t.status == TrialStatus.COMPLETE
        and math.isfinite(t.value)
        and math.isfinite(t.cost(COST))
    ]
    if not complete:
        raise UserError(
            "no federated trial completed with a validation BCA and a CPU time; nothing to "
            "evaluate. Read the reasons in the study's trials.csv and its log (lower the "
            "learning rate, or raise federated.n_trials)."
        )
    best = min(complete, key=lambda t: (-t.value, t.cost(COST), t.trial))
    near = [t for t in complete if t.value >= best.value - margin - 1e-12]
    efficient = min(near, key=lambda t: (t.cost(COST), -t.value, t.trial))
    return {"best": best, "efficient": efficient}


def trial_summary(trial: FinishedTrial) -> dict[str, Any]:
    """What the evaluation JSON and the report say of a chosen trial."""
    return {
        "trial": trial.trial,
        "params": dict(trial.params),
        "valid_bca": trial.value,
        "cpu_seconds": trial.cost(COST),
        "trial_seconds": trial.trial_seconds,
    }


def evaluate_engine(
    config: dict[str, Any],
    *,
    engine: str,
    trials_csv: Path,
    split_csv: Path,
    zero_shot: Sequence[Path] = (),
    cache_dir: Path | None = None,
    num_cpus: int | None = None,
    protocol: str = "speaker",
    resamples: int = 1000,
) -> dict[str, Any]:
    """Choose, retrain and score an engine's federated configurations (module docstring).

    Returns:
        ``engine``, ``family``, ``near_best_margin`` and ``selections``: per choice, the
        trial (params, validation BCA, CPU seconds, trial number), the retraining's CPU
        seconds and ``evaluations`` (one :func:`serhpo.evaluation.evaluate` result per corpus).
    """
    from serhpo.data import Preprocessing
    from serhpo.evaluation import evaluate
    from serhpo.federated.objective import (
        federated_data,
        federated_section,
        fixed_params,
        simulation_resources,
    )
    from serhpo.federated.simulation import fit_federated
    from serhpo.final import FinalModel
    from serhpo.objective import config_seed

    section = federated_section(config)
    margin = float(section.get("near_best_margin", 0.01))
    space = SearchSpace.from_config(config.get("search_space"))
    chosen = select_configurations(TrialsLog(trials_csv, space).read(), margin=margin)
    data = federated_data(config, split_csv=split_csv, cache_dir=cache_dir)
    seed = config_seed(config)
    selections: dict[str, Any] = {}
    retrained: dict[int, dict[str, Any]] = {}  # best and efficient may be the same trial
    for name, trial in chosen.items():
        if trial.trial not in retrained:
            log.info("%s: retraining trial %d %s on train + valid", name, trial.trial, trial.params)
            outcome = fit_federated(
                {**fixed_params(config), **trial.params},
                data,
                seed=seed,
                train_part=("train", "valid"),
                valid_part=None,
                resources=simulation_resources(config, num_cpus=num_cpus),
            )
            if outcome.result.status == TrialStatus.FAILED:
                raise UserError(
                    f"retraining {engine}'s {name} federated configuration (trial {trial.trial}) "
                    f"failed: {outcome.result.reason}. The study's run of it succeeded, so the "
                    "difference is the extra valid speakers; inspect the log."
                )
            final = FinalModel(
                model=outcome.model,
                labels=tuple(data.split.labels),
                preprocessing=Preprocessing(
                    maxlen=outcome.settings.maxlen, padding=outcome.settings.padding
                ),
                metadata={"model": f"federated-{engine}-{name}"},
                threads=outcome.settings.threads,
            )
            # The home corpus on its test speakers, then each other corpus zero-shot.
            targets = [(split_csv, "tune"), *((path, "zero_shot") for path in zero_shot)]
            evaluations = [
                evaluate(
                    final,
                    split_csv=path,
                    model_name=f"federated-{engine}",
                    role=role,
                    protocol=protocol,
                    target_labels=config.get("target_labels") or (),
                    resamples=resamples,
                    seed=seed,
                    audio=config.get("audio"),
                )
                for path, role in targets
            ]
            retrained[trial.trial] = {
                "retrain_cpu_seconds": outcome.result.extra.get("cpu_seconds"),
                "retrain_clients": outcome.result.extra.get("clients"),
                "evaluations": evaluations,
            }
        selections[name] = {**trial_summary(trial), **retrained[trial.trial]}
    return {
        "engine": engine,
        "family": section.get("backbone", "logmel"),
        "near_best_margin": margin,
        "protocol": protocol,
        "selections": selections,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo fl-evaluate``."""
    parser.add_argument("--engine", required=True, help="the engine whose study is evaluated")
    parser.add_argument("--trials", required=True, type=Path, help="the study's trials.csv")
    parser.add_argument("--split", required=True, type=Path, help="the tuning corpus' split CSV")
    parser.add_argument(
        "--zero-shot",
        type=Path,
        nargs="*",
        default=[],
        help="split CSVs of corpora scored zero-shot (all labelled utterances)",
    )
    add_config_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, help="feature cache root")
    parser.add_argument("--threads", type=int, help="CPUs the simulation may use")
    parser.add_argument("--protocol", default="speaker", help="the split protocol (split.strategy)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--out", required=True, type=Path, help="the evaluation JSON")


def write_json(content: Any, path: Path) -> None:
    """Write JSON atomically, NaN written as ``null`` at any depth."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(_json_ready(content), indent=2, allow_nan=False) + "\n")
    partial.replace(path)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo fl-evaluate``; write the JSON."""
    config = read_stage_config(args.config, args.config_json)
    result = evaluate_engine(
        config,
        engine=args.engine,
        trials_csv=args.trials,
        split_csv=args.split,
        zero_shot=args.zero_shot,
        cache_dir=args.cache_dir,
        num_cpus=args.threads,
        protocol=args.protocol,
        resamples=args.bootstrap,
    )
    write_json(result, args.out)
    for name, selection in result["selections"].items():
        home = selection["evaluations"][0]
        log.info(
            "%s %s: valid BCA %.3f at %.1f client CPU s; test BCA %.3f",
            args.engine,
            name,
            selection["valid_bca"],
            selection["cpu_seconds"],
            home["bca"],
        )
    print(json.dumps({n: s["trial"] for n, s in result["selections"].items()}))
    return 0
