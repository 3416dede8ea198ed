"""How fast each HPO engine finds a good configuration: the paper's Tables 3 and 5 on the demo data.

Every engine (Ax, Hyperopt, Optuna, grid, random) runs the pipeline's own study
(:func:`serhpo.hpo.study.run_study` with :func:`serhpo.objective.build_objective`) on the
same synthetic EmoDB with a speaker-independent split, the same search space, the same trial
budget and the same seeds; the tables are computed from the studies' trials.csv by the
report's own functions (:func:`serhpo.report.tables.time_to_threshold_table` and
:func:`~serhpo.report.tables.efficiency_table`) and then summarised over the seeds:

- Table 3: per engine and threshold, the median over the seeds that reached it of the
  minutes and the trial at which the best-so-far validation BCA first exceeded it, and how
  many seeds reached it;
- Table 5: per engine, mean +- sd over seeds of the best validation BCA, the minutes to
  that trial, E = BCA / minutes (the paper's efficiency), the total minutes, and the engine's
  own time per trial (study time not spent inside trials).

The model is the log-Mel family (the demo's tiny random wav2vec2 barely learns, so its BCA
thresholds would mean nothing); its search space is chosen so that one trial takes about
0.2-8 s on one thread. The features are cached once before any engine starts, so the
engines differ in trial cost and their own overhead only. With ``--pruning both`` every
study runs a second time with ``hpo.pruning.enabled: true`` to show what pruning saves.

Usage (from the repository root):
    python benchmarks/hpo_efficiency.py --quick  # smoke run: 1 seed, 4 trials (~1.5 min)
    python benchmarks/hpo_efficiency.py          # 3 seeds x 12 trials, pruning off + on: ~12 min
    python benchmarks/hpo_efficiency.py --thresholds 0.55 0.65 --pruning off

The working folder (default benchmarks/output/hpo_efficiency, git-ignored) is rebuilt on
every run; the table is printed and written to benchmarks/hpo_efficiency.md (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from serhpo.config import (
    cache_plan,
    deep_merge,
    load_config,
    load_schema,
    settings,
    validate_config,
)
from serhpo.corpora import get_format
from serhpo.corpora.synthetic import synthesize_corpus
from serhpo.errors import UserError
from serhpo.features import cache_features
from serhpo.hpo.settings import ENGINE_NAMES, HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.study import run_study
from serhpo.objective import build_objective
from serhpo.prepare import prepare_corpus
from serhpo.report.inputs import ReportSettings, Study, read_study
from serhpo.report.tables import efficiency_table, model_order, time_to_threshold_table
from serhpo.splits import split_manifest

log = logging.getLogger("hpo_efficiency")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = ROOT / "benchmarks" / "output" / "hpo_efficiency"
DEFAULT_OUT = ROOT / "benchmarks" / "hpo_efficiency.md"
#: Written into the working folder, so that a rerun only ever wipes a folder it made.
MARKER = ".hpo_efficiency"

#: The benchmark's search space: learning rate, epochs, three heads of very different cost
#: and skill on this data (mlp ~0.03 s/epoch, transformer ~0.3, cnn ~0.5) and their width.
SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
    "epochs": {"type": "int", "low": 2, "high": 12},
    "arch": {"type": "choice", "choices": ["cnn", "transformer", "mlp"]},
    "embedding_size": {"type": "choice", "choices": [32, 64, 128]},
}

#: Overrides of config.yaml + profiles/demo/demo-config.yaml (search_space is replaced, not
#: merged, since the demo's wav2vec2 parameters do not apply to log-Mel models).
OVERRIDES: dict[str, Any] = {
    "backbone": {"name": "logmel"},
    # 4 channels: the CNN at its default 16 costs ~2 s per epoch on one thread.
    "model": {"channels": 4},
    "training": {"threads": 1, "batch_size": 8},
    "hpo": {"grid_budget": "same"},
    "report": {"paper_figures": False},
}


@dataclass(frozen=True)
class Run:
    """One study of the benchmark and where its trials.csv lies."""

    pruning: bool
    seed: int
    engine: str
    trials_csv: Path


def benchmark_config(
    *,
    seed: int,
    trials: int,
    startup: int,
    pruning: bool,
    engines: Sequence[str],
    thresholds: Sequence[float],
    cache_dir: Path,
) -> dict[str, Any]:
    """The demo profile with the benchmark's model, space, budget and seed, checked by the schema.

    Example:
        >>> config = benchmark_config(seed=1, trials=12, startup=4, pruning=False,
        ...     engines=["grid"], thresholds=[0.5], cache_dir=Path("cache"))  # doctest: +SKIP
        >>> config["backbone"]["name"], config["hpo"]["n_trials"]  # doctest: +SKIP
        ('logmel', 12)
    """
    config = load_config([ROOT / "config.yaml", ROOT / "profiles" / "demo" / "demo-config.yaml"])
    config = deep_merge(
        config,
        {
            **OVERRIDES,
            "seed": seed,
            "features": {"cache_dir": str(cache_dir)},
            "hpo": {
                **OVERRIDES["hpo"],
                "engines": list(engines),
                "n_trials": trials,
                "n_sobol": startup,
                "n_startup_trials": startup,
                "pruning": {"enabled": pruning},
            },
            "report": {**OVERRIDES["report"], "thresholds": list(thresholds)},
        },
    )
    config["search_space"] = dict(SEARCH_SPACE)
    validate_config(config, load_schema())
    return config


def build_demo_data(workdir: Path, *, config: dict[str, Any]) -> Path:
    """Synthesize, prepare and split the demo's EmoDB as the pipeline's data stage does.

    Returns:
        The split CSV (paths absolute, so the objective can run from any folder).
    """
    synthetic = config["corpora"]["emodb"]["synthetic"]
    raw_dir = workdir / "corpus" / "synthetic"
    synthesize_corpus(
        "emodb",
        raw_dir,
        n_speakers=synthetic["speakers"],
        utterances_per_speaker_label=synthetic["per_speaker_label"],
        seed=config["seed"],
    )
    prepared = prepare_corpus(
        corpus="emodb",
        fmt=get_format("emodb"),
        raw_dir=raw_dir,
        out_dir=workdir / "corpus" / "16k",
        target_labels=config["target_labels"],
        label_map=config["corpora"]["emodb"].get("label_map"),
        sample_rate=config["audio"]["sample_rate"],
        threads=2,
    )
    split = split_manifest(
        prepared.manifest,
        strategy=config["split"]["strategy"],
        test_fraction=config["split"]["test_fraction"],
        valid_fraction=config["split"]["valid_fraction"],
        seed=config["seed"],
    )
    split_csv = workdir / "split.csv"
    split.to_csv(split_csv, index=False)
    return split_csv


def warm_cache(config: dict[str, Any], split_csv: Path) -> tuple[float, int]:
    """Compute the log-Mel features of the train and valid parts once; (seconds, entries)."""
    started = time.perf_counter()
    typed = settings(config)  # what the pipeline's cache_features plans from
    plan = cache_plan(typed)
    computed = 0
    for padding in plan.paddings:
        summary = cache_features(
            split_csv,
            cache_dir=typed.paths.cache_dir,
            backbone=typed.backbone,
            model_params=typed.model,
            maxlens=plan.maxlens,
            padding=padding,
            labels=typed.target_labels,
        )
        computed += int(summary["computed"])
    return time.perf_counter() - started, computed


def run_one(config: dict[str, Any], split_csv: Path, *, engine: str, out_dir: Path) -> Path:
    """One engine's study as the pipeline's hpo rule runs it; returns its trials.csv."""
    space = SearchSpace.from_config(config["search_space"])
    settings = HpoSettings.from_config(config, engine=engine).with_overrides(seed=config["seed"])
    # A fresh objective per study, as each hpo job is its own process: every engine reads
    # the cached features from disk in its first trial.
    objective = build_objective(
        config, split_csv=split_csv, cache_dir=Path(config["features"]["cache_dir"])
    )
    outcome = run_study(space, objective, settings, out_dir=out_dir)
    return outcome.paths.trials


def seed_tables(
    studies: Sequence[Study], *, settings: ReportSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The report's Table 3 and Table 5 for one seed's studies, with the engines' own time."""
    table3 = time_to_threshold_table(studies, settings=settings)
    table5 = efficiency_table(studies, settings=settings)
    overhead = {
        study.engine: (
            study.trials["cumulative_seconds"].max() - study.trials["trial_seconds"].sum()
        )
        / len(study.trials)
        for study in studies
    }
    table5["engine_s_per_trial"] = table5["engine"].map(overhead)
    return table3, table5


def _mean_sd(values: Sequence[float], digits: int) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _seeds(count: int) -> str:
    return f"{count} seed" + ("" if count == 1 else "s")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def markdown_table3(table3: pd.DataFrame, *, thresholds: Sequence[float], seeds: int) -> str:
    """Table 3 over seeds: median minutes and trial to each threshold, seeds that reached it."""
    head = "| engine | " + " | ".join(f"> {t:g}" for t in thresholds) + " |"
    lines = [head, "|---|" + "---|" * len(thresholds)]
    for engine in model_order(table3["engine"].unique()):
        cells = []
        for threshold in thresholds:
            rows = table3[(table3["engine"] == engine) & (table3["threshold"] == threshold)]
            reached = rows[rows["reached"]]
            if reached.empty:
                cells.append(f"not reached; 0/{seeds} seeds")
                continue
            minutes = _median(reached["minutes"].tolist())
            # trials_run counts from 1, as the paper does (trials.csv numbers from 0).
            trial = _median([int(t) for t in reached["trials_run"]])
            cells.append(f"{minutes:.2f} min (trial {trial:g}); {len(reached)}/{seeds} seeds")
        lines.append(f"| {engine} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_table5(table5: pd.DataFrame) -> str:
    """Table 5 over seeds: mean ± sd of best BCA, minutes to it, E, total minutes, overhead."""
    lines = [
        "| engine | best valid BCA | minutes to best | E = BCA / min | total min "
        "| engine s / trial | trials pruned / failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for engine in model_order(table5["engine"].unique()):
        rows = table5[table5["engine"] == engine]
        lines.append(
            f"| {engine} | {_mean_sd(rows['best_valid_bca'].tolist(), 3)} "
            f"| {_mean_sd(rows['minutes_to_best'].tolist(), 2)} "
            f"| {_mean_sd(rows['efficiency'].tolist(), 2)} "
            f"| {_mean_sd(rows['total_minutes'].tolist(), 2)} "
            f"| {_mean_sd(rows['engine_s_per_trial'].tolist(), 2)} "
            f"| {int(rows['n_pruned'].sum())} / {int(rows['n_failed'].sum())} "
            f"of {int(rows['n_trials'].sum())} |"
        )
    return "\n".join(lines)


def markdown_pruning(off: pd.DataFrame, on: pd.DataFrame) -> str:
    """Per engine: total minutes and best BCA without and with pruning (means over seeds)."""
    lines = [
        "| engine | total min, pruning off | total min, pruning on | time saved "
        "| best BCA off | best BCA on |",
        "|---|---|---|---|---|---|",
    ]
    for engine in model_order(set(off["engine"]) & set(on["engine"])):
        a, b = off[off["engine"] == engine], on[on["engine"] == engine]
        total_off, total_on = a["total_minutes"].mean(), b["total_minutes"].mean()
        lines.append(
            f"| {engine} | {total_off:.2f} | {total_on:.2f} "
            f"| {100 * (1 - total_on / total_off):.0f} % "
            f"| {a['best_valid_bca'].mean():.3f} | {b['best_valid_bca'].mean():.3f} |"
        )
    return "\n".join(lines)


def summarise(
    runs: Sequence[Run], *, settings: ReportSettings, seeds: Sequence[int]
) -> dict[bool, tuple[pd.DataFrame, pd.DataFrame]]:
    """Read every study back and stack the per-seed tables, per pruning mode."""
    result: dict[bool, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for pruning in sorted({run.pruning for run in runs}):
        threes, fives = [], []
        for seed in seeds:
            studies = [
                read_study(run.trials_csv)
                for run in runs
                if run.pruning == pruning and run.seed == seed
            ]
            table3, table5 = seed_tables(studies, settings=settings)
            threes.append(table3.assign(seed=seed))
            fives.append(table5.assign(seed=seed))
        result[pruning] = (
            pd.concat(threes, ignore_index=True),
            pd.concat(fives, ignore_index=True),
        )
    return result


def prepare_workdir(workdir: Path) -> None:
    """Start from an empty working folder; refuse to wipe one this benchmark did not make."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            raise UserError(
                f"{workdir} is not empty and was not made by this benchmark (no {MARKER} file); "
                "pass an empty or new --workdir."
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by benchmarks/hpo_efficiency.py; wiped on every run\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 4 trials")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=12, help="trial budget of every engine")
    parser.add_argument(
        "--engines", nargs="+", default=list(ENGINE_NAMES), choices=list(ENGINE_NAMES)
    )
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=[0.5, 0.6],
        help="validation-BCA thresholds of Table 3",
    )
    parser.add_argument(
        "--startup",
        type=int,
        help="Ax's Sobol and Hyperopt's/Optuna's random start-up trials "
        "(default: a third of --trials; the libraries' own 20/10 would leave TPE unused)",
    )
    parser.add_argument(
        "--pruning",
        choices=["off", "on", "both"],
        default="both",
        help="hpo.pruning.enabled for the studies; both: every study twice",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown output")
    parser.add_argument("--verbose", action="store_true", help="log every trial")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.trials = args.seeds[:1], 4
    if args.startup is None:
        args.startup = max(1, args.trials // 3)
    args.thresholds = sorted(set(args.thresholds))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    for name in ("serhpo", "ax", "hyperopt", "optuna"):
        logging.getLogger(name).setLevel(logging.INFO if args.verbose else logging.WARNING)
    started = time.perf_counter()
    load_at_start = os.getloadavg()

    workdir = args.workdir.resolve()
    prepare_workdir(workdir)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.pruning]

    def config_for(seed: int, pruning: bool) -> dict[str, Any]:
        return benchmark_config(
            seed=seed,
            trials=args.trials,
            startup=args.startup,
            pruning=pruning,
            engines=args.engines,
            thresholds=args.thresholds,
            cache_dir=workdir / "features",
        )

    # The data are built once with the config's seed 0, whatever the study seeds: every
    # engine and seed sees the same utterances and split.
    base = config_for(0, False)
    split_csv = build_demo_data(workdir, config=base)
    parts = pd.read_csv(split_csv)["part"].value_counts().to_dict()
    cache_seconds, cached = warm_cache(base, split_csv)
    log.info("data: %s; %d feature entries cached in %.1f s", parts, cached, cache_seconds)

    runs: list[Run] = []
    for pruning in modes:
        for seed in args.seeds:
            config = config_for(seed, pruning)
            for engine in args.engines:
                out_dir = workdir / "studies" / f"pruning-{'on' if pruning else 'off'}"
                out_dir = out_dir / f"seed{seed}" / engine
                trials_csv = run_one(config, split_csv, engine=engine, out_dir=out_dir)
                runs.append(Run(pruning=pruning, seed=seed, engine=engine, trials_csv=trials_csv))
                trials = pd.read_csv(trials_csv)
                log.info(
                    "pruning %s, seed %d, %s: best BCA %.3f, %.1f s",
                    "on" if pruning else "off",
                    seed,
                    engine,
                    trials["value"].max(),
                    trials["cumulative_seconds"].max(),
                )

    settings = ReportSettings.from_config(base)
    tables = summarise(runs, settings=settings, seeds=args.seeds)
    total_minutes = (time.perf_counter() - started) / 60
    text = render(
        args,
        tables,
        parts=parts,
        cache_seconds=cache_seconds,
        cached=cached,
        total_minutes=total_minutes,
        load=(load_at_start, os.getloadavg()),
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    for pruning, (table3, table5) in tables.items():
        stem = f"pruning-{'on' if pruning else 'off'}"
        table3.to_csv(workdir / f"table3_{stem}.csv", index=False)
        table5.to_csv(workdir / f"table5_{stem}.csv", index=False)
    log.info("wrote %s; per-seed tables and studies under %s", args.out, workdir)
    return 0


def render(
    args: argparse.Namespace,
    tables: dict[bool, tuple[pd.DataFrame, pd.DataFrame]],
    *,
    parts: dict[str, int],
    cache_seconds: float,
    cached: int,
    total_minutes: float,
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> str:
    """The Markdown report: header line, setup, Tables 3 and 5 per pruning mode, comparison."""
    command = "python benchmarks/hpo_efficiency.py" + (" --quick" if args.quick else "")
    if not args.quick:
        command += f" --seeds {' '.join(map(str, args.seeds))} --trials {args.trials}"
    command += (
        f" --thresholds {' '.join(f'{t:g}' for t in args.thresholds)} --pruning {args.pruning}"
    )
    if list(args.engines) != list(ENGINE_NAMES):
        command += f" --engines {' '.join(args.engines)}"
    seeds = len(args.seeds)
    header = (
        f"`{command}`; {datetime.date.today()}; {platform.machine()} {os.cpu_count()} cores, "
        f"torch {torch.__version__}; whole run {total_minutes:.1f} min; load average "
        f"{load[0][0]:.1f} at start, {load[1][0]:.1f} at end (other jobs may have been running "
        "on this machine, so single timings vary; compare engines within a row of seeds)."
    )
    space = yaml.safe_dump(SEARCH_SPACE, default_flow_style=True, sort_keys=False, width=200)
    setup = [
        f"- Data: synthetic EmoDB of the demo profile (10 speakers x 4 utterances per label, "
        f"speaker-independent split: {parts.get('train', 0)} train / {parts.get('valid', 0)} "
        f"valid utterances); BCA is on the valid part (7 classes, chance 0.143).",
        f"- Features: log-Mel, cached once before the engines start ({cached} entries in "
        f"{cache_seconds:.1f} s, not counted in any study), so engines are compared on trial "
        "cost and their own overhead alone.",
        f"- Model: `backbone: logmel`, `model: {{channels: 4}}`, `training: {{threads: 1, "
        f"batch_size: 8}}`; search space `{space.strip()}`.",
        f"- Budget: {args.trials} trials per engine and seed (grid: its first {args.trials} "
        f"points, in order), seeds {', '.join(map(str, args.seeds))} (engine seed and training "
        f"seed); Ax Sobol / TPE start-up trials: {args.startup}.",
        "- Times: wall-clock minutes since the study started, at the end of the trial "
        "(trials.csv `cumulative_seconds`), computed by `serhpo.report.tables`; `engine s / "
        "trial` is study time not spent inside trials (proposing, fitting the surrogate, logging).",
    ]
    blocks = [header, "", *setup]
    for pruning, (table3, table5) in tables.items():
        mode = "pruning on (`hpo.pruning.enabled: true`)" if pruning else "pruning off"
        blocks += [
            "",
            f"### Table 3, {mode}: time to exceed a validation-BCA threshold",
            "",
            f"Median over the seeds that reached it ({_seeds(seeds)}) of the minutes and the trial "
            "(counted from 1, as in the paper) at which the best validation BCA so far first "
            "exceeded the threshold; then how many seeds reached it.",
            "",
            markdown_table3(table3, thresholds=args.thresholds, seeds=seeds),
            "",
            f"### Table 5, {mode}: efficiency",
            "",
            f"Mean ± sd over {_seeds(seeds)}. E = best validation BCA / minutes until the trial "
            "that scored it (the paper's efficiency).",
            "",
            markdown_table5(table5),
        ]
    if len(tables) == 2:
        blocks += [
            "",
            "### Pruning: what it saves",
            "",
            "Means over seeds; a pruned trial counts with its last validation BCA.",
            "",
            markdown_pruning(tables[False][1], tables[True][1]),
        ]
    return "\n".join(blocks) + "\n"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
