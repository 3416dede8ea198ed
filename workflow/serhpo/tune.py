"""``serhpo hpo``: run one engine's study on the objective the command line names.

The study itself (the ask/tell loop, budgets, resumption, workers) is :mod:`serhpo.hpo.study`,
which knows no objective; this module is its caller and registers the objectives:

- ``trainer``: fine-tune on the split (:func:`serhpo.objective.trainer_objective`; with
  ``--outer-fold``, the mean BCA over inner speaker folds: :func:`serhpo.crossval.cv_objective`);
- ``federated``: FedAvg with the split's training speakers as clients
  (:func:`serhpo.federated.objective.federated_objective`);
- ``synthetic``: a cheap stand-in with a known optimum
  (:class:`serhpo.hpo.synthetic_objective.SyntheticObjective`).

Each is imported only when named, so that a study of one needs none of the others' packages.

Example:
    $ serhpo hpo --engine optuna --config config.yaml --out results/hpo/optuna \\
        --objective trainer --split results/splits/emodb.csv
    $ serhpo hpo --engine grid --config config.yaml --out /tmp/grid --objective synthetic
    $ serhpo hpo --engine random --config config.yaml --out /tmp/r --objective synthetic \\
        --worker 1 --worker-summary /tmp/r-worker-1.yaml   # one of several jobs
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from serhpo.config import add_config_arguments, read_stage_config
from serhpo.corpora.download import file_sha256
from serhpo.errors import UserError
from serhpo.hpo.dashboard import Dashboard, default_journal
from serhpo.hpo.settings import ENGINE_NAMES, HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.study import StudyOutcome, run_study
from serhpo.hpo.workers import where
from serhpo.trial import Objective


def trainer_builder() -> Callable[..., Objective]:
    """``serhpo.objective.trainer_objective``, or a UserError that says what to do instead."""
    try:
        from serhpo.objective import trainer_objective
    except ImportError as error:
        raise UserError(
            f"--objective trainer needs serhpo.objective.trainer_objective(config, *, "
            f"split_csv), which is not available ({error}). Install the trainer (pip install "
            f"-e .), or use --objective synthetic to run the study on a cheap stand-in "
            f"objective."
        ) from error
    return trainer_objective


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo hpo``."""
    # Long, but only a list: one option after another, as `serhpo hpo --help` shows them.
    parser.add_argument("--engine", required=True, choices=ENGINE_NAMES, help="HPO engine")
    add_config_arguments(parser)
    parser.add_argument(
        "--out", type=Path, required=True, help="study folder (rerun with it to resume)"
    )
    parser.add_argument(
        "--objective",
        choices=("trainer", "federated", "synthetic"),
        default="trainer",
        help="trainer: fine-tune on --split (default); federated: FedAvg with the split's "
        "training speakers as clients (config federated:); synthetic: a cheap stand-in with a "
        "known optimum",
    )
    parser.add_argument("--split", type=Path, help="split CSV of the tuning corpus (trainer)")
    parser.add_argument("--cache-dir", type=Path, help="feature cache root (trainer)")
    parser.add_argument("--backbone-dir", type=Path, help="the pretrained model's folder (trainer)")
    parser.add_argument(
        "--outer-fold",
        type=int,
        help="trainer: the study of this outer fold of --split's fold column (speaker "
        "cross-validation): trials score the mean BCA over inner speaker folds of the fold's "
        "training speakers; its held-out speakers are never read",
    )
    parser.add_argument(
        "--inner-folds",
        help="with --outer-fold: inner speaker folds, k >= 2 or loso (default: config "
        "split.inner_folds, else 3)",
    )
    parser.add_argument("--n-trials", type=int, help="override hpo.n_trials")
    parser.add_argument(
        "--restart-on-change",
        action="store_true",
        help="when --out holds a study started with another engine, space, split or training "
        "settings, move it aside and start afresh (default: refuse)",
    )
    parser.add_argument("--time-budget-min", type=float, help="override hpo.time_budget_min")
    parser.add_argument("--seed", type=int, help="override seed")
    parser.add_argument("--n-workers", type=int, help="override hpo.n_workers")
    parser.add_argument(
        "--worker",
        type=int,
        help="run as this worker (0, 1, ...) of a study that other processes or jobs work on "
        "at the same time (optuna, random, grid), and stop when nothing of the budget is left "
        "to start; afterwards run once without --worker to finish the study",
    )
    parser.add_argument(
        "--worker-summary",
        type=Path,
        help="with --worker: write what this worker did (host, SLURM job, its trials) as YAML",
    )
    parser.add_argument(
        "--threads", type=int, help="federated objective: CPUs the simulation may use"
    )
    parser.add_argument(
        "--dashboard",
        default="auto",
        metavar="JOURNAL",
        help="Optuna journal where every trial is also recorded, one study per engine, for "
        "`optuna-dashboard JOURNAL`; auto: dashboard.journal in the folder that holds the "
        "engine's folder (results/hpo/ for results/hpo/ax/study); none: no journal "
        "(default: auto)",
    )
    parser.add_argument(
        "--epoch-seconds",
        type=float,
        default=0.0,
        help="synthetic objective: seconds slept per epoch at maxlen 80000",
    )


def _trial_inputs(config: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """What a trial's score depends on besides its parameters: resume only with the same."""
    inputs: dict[str, Any] = {"objective": args.objective, "seed": config.get("seed", 0)}
    if args.objective == "trainer":
        inputs["split_sha256"] = file_sha256(Path(args.split))
        for key in ("target_labels", "backbone", "model", "training"):
            inputs[key] = config.get(key)
        if getattr(args, "outer_fold", None) is not None:
            from serhpo.crossval import inner_folds_setting

            inputs["outer_fold"] = args.outer_fold
            inputs["inner_folds"] = args.inner_folds or inner_folds_setting(config)
    if args.objective == "federated":
        from serhpo.federated.objective import federated_section, fixed_params

        inputs["split_sha256"] = file_sha256(Path(args.split))
        inputs["target_labels"] = config.get("target_labels")
        inputs["family"] = federated_section(config).get("backbone", "logmel")
        inputs["fixed"] = fixed_params(config)
    return inputs


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo hpo``; print the best trial (or, with --worker, what the worker did)."""
    if args.worker_summary is not None and args.worker is None:
        raise UserError("--worker-summary needs --worker (it describes one worker's run).")
    started = time.time()
    config = read_stage_config(args.config, args.config_json)
    space = SearchSpace.from_config(config.get("search_space"))
    settings = HpoSettings.from_config(config, engine=args.engine).with_overrides(
        n_trials=args.n_trials,
        time_budget_min=args.time_budget_min,
        seed=args.seed,
        n_workers=args.n_workers,
    )
    objective, settings = _objective(config, args, settings)
    dashboard = None
    if args.dashboard != "none":
        journal, name = default_journal(args.out, engine=settings.engine)
        if args.dashboard != "auto":
            journal = Path(args.dashboard)
        dashboard = Dashboard(journal, study=name, space=space)
    outcome = run_study(
        space,
        objective,
        settings,
        out_dir=args.out,
        dashboard=dashboard,
        trial_inputs=_trial_inputs(config, args),
        restart_on_change=args.restart_on_change,
        worker=args.worker,
        per_fold=args.objective == "trainer" and args.outer_fold is not None,
    )
    if args.worker is None:
        print(yaml.safe_dump(outcome.best, sort_keys=False), end="")
        return 0
    _report_worker(args, settings, outcome, started=started)
    return 0


def _objective(
    config: Mapping[str, Any], args: argparse.Namespace, settings: HpoSettings
) -> tuple[Objective, HpoSettings]:
    """The objective ``--objective`` names (and the settings, which a CV study adapts)."""
    if args.objective == "synthetic":
        from serhpo.hpo.synthetic_objective import SyntheticObjective

        return SyntheticObjective(seed=settings.seed, epoch_seconds=args.epoch_seconds), settings
    if args.split is None or not args.split.is_file():
        advice = "" if args.objective == "federated" else ", or pass --objective synthetic"
        raise UserError(
            f"--objective {args.objective} needs --split with the tuning corpus' split CSV; "
            f"found {args.split}. Run `serhpo split` first{advice}."
        )
    if args.objective == "federated":
        from serhpo.federated.objective import federated_objective

        objective = federated_objective(
            config, split_csv=args.split, cache_dir=args.cache_dir, num_cpus=args.threads
        )
        return objective, settings
    build = trainer_builder()  # fail now, not in the first trial
    options = {"cache_dir": args.cache_dir, "backbone_dir": args.backbone_dir}
    options = {key: value for key, value in options.items() if value is not None}
    if args.outer_fold is None:
        return build(config, split_csv=args.split, **options), settings
    from serhpo.crossval import cv_objective
    from serhpo.splits import parse_folds

    inner_folds = parse_folds(args.inner_folds, key="--inner-folds") if args.inner_folds else None
    objective = cv_objective(
        config,
        split_csv=args.split,
        outer_fold=args.outer_fold,
        inner_folds=inner_folds,
        **options,
    )
    # Reports come once per inner fold (the running mean), not per epoch.
    return objective, settings.with_overrides(pruning=replace(settings.pruning, step="inner fold"))


def _report_worker(
    args: argparse.Namespace, settings: HpoSettings, outcome: StudyOutcome, *, started: float
) -> None:
    """Print (and with --worker-summary write) what this worker did."""
    summary = {
        "engine": settings.engine,
        "worker": args.worker,
        **where(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        "trials": outcome.ran,
        "study_trials": len(outcome.trials),
        "budget": settings.n_trials,
        "stopped": outcome.stopped,
    }
    text = yaml.safe_dump(summary, sort_keys=False)
    if args.worker_summary is not None:
        args.worker_summary.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.worker_summary.with_name(args.worker_summary.name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, args.worker_summary)
    print(text, end="")
