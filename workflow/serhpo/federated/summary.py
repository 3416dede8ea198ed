"""``serhpo fl-report``: the federated studies side by side, and their joint Pareto front.

Writes under ``--out-dir`` (``results/federated/``):

- ``summary.csv``/``.md``/``.html``: per engine, the trials run, the best validation BCA with its
  client CPU seconds and its trial number (as in trials.csv, from 0), the cheapest configuration
  within ``near_best_margin`` of it (its BCA, CPU seconds, trial number) and, when
  ``fl-evaluate`` ran, both configurations' test BCA with a 95 % interval;
- ``pareto.csv``/``.md``/``.html``: the configurations no other trial of any engine beats on both
  validation BCA and client CPU seconds;
- ``pareto.png``: every complete trial, coloured by engine, and the joint front.

Example:
    $ serhpo fl-report --trials grid=results/federated/hpo/grid/trials.csv \\
        optuna=results/federated/hpo/optuna/trials.csv --config config.yaml \\
        --out-dir results/federated
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from serhpo.config import add_config_arguments, read_stage_config
from serhpo.errors import UserError
from serhpo.federated.evaluate import COST, select_configurations
from serhpo.hpo.engine import FinishedTrial
from serhpo.hpo.pareto import pareto_front
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.trials_log import TrialsLog
from serhpo.report.html import write_page
from serhpo.report.markdown import markdown_table
from serhpo.trial import TrialStatus


def summary_table(
    studies: Mapping[str, Sequence[FinishedTrial]],
    *,
    margin: float,
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per engine: its best and its cheapest near-best configuration.

    Example:
        >>> table = summary_table({"grid": trials}, margin=0.01)  # doctest: +SKIP
        >>> list(table.columns[:4])  # doctest: +SKIP
        ['engine', 'trials', 'best_valid_bca', 'best_cpu_seconds']
    """
    rows = []
    for engine, trials in studies.items():
        chosen = select_configurations(trials, margin=margin)
        row: dict[str, Any] = {
            "engine": engine,
            "trials": len(trials),
            "complete": sum(t.status == TrialStatus.COMPLETE for t in trials),
        }
        for name, trial in chosen.items():
            row[f"{name}_valid_bca"] = trial.value
            row[f"{name}_cpu_seconds"] = trial.cost(COST)
            row[f"{name}_trial"] = trial.trial
            row[f"{name}_params"] = json.dumps(trial.params, sort_keys=True)
            selection = ((evaluations or {}).get(engine) or {}).get("selections", {}).get(name)
            home = (selection or {}).get("evaluations", [{}])[0]
            interval = home.get("bca_ci95") or [math.nan, math.nan]
            row[f"{name}_test_bca"] = _number(home.get("bca"))
            row[f"{name}_test_ci_low"] = _number(interval[0])
            row[f"{name}_test_ci_high"] = _number(interval[1])
        row["cpu_saving"] = row["best_cpu_seconds"] / max(row["efficient_cpu_seconds"], 1e-9)
        rows.append(row)
    return pd.DataFrame(rows)


def joint_front(studies: Mapping[str, Sequence[FinishedTrial]]) -> pd.DataFrame:
    """The Pareto front of all engines' trials (validation BCA up, client CPU seconds down)."""
    labelled = {id(t): engine for engine, trials in studies.items() for t in trials}
    everything = [t for trials in studies.values() for t in trials]
    rows = [
        {
            "engine": labelled[id(t)],
            "trial": t.trial,
            "valid_bca": t.value,
            "cpu_seconds": t.cost(COST),
            "trial_seconds": t.trial_seconds,
            **{f"param_{k}": v for k, v in t.params.items()},
        }
        for t in pareto_front(everything, cost=COST)
    ]
    return pd.DataFrame(rows)


def summary_markdown(table: pd.DataFrame, *, margin: float, corpus: str, protocol: str) -> str:
    """The summary table as Markdown with a line on what it measures."""
    header = [
        "engine",
        "trials",
        "best valid BCA",
        "CPU s",
        "trial",
        "test BCA [95 % CI]",
        f"cheapest within {margin:g}",
        "CPU s",
        "trial",
        "test BCA [95 % CI]",
        "CPU saving",
    ]
    rows = [
        [
            row.engine,
            f"{row.trials}",
            f"{row.best_valid_bca:.3f}",
            f"{row.best_cpu_seconds:.3g}",
            f"{row.best_trial}",
            _interval(row.best_test_bca, row.best_test_ci_low, row.best_test_ci_high),
            f"{row.efficient_valid_bca:.3f}",
            f"{row.efficient_cpu_seconds:.3g}",
            f"{row.efficient_trial}",
            _interval(
                row.efficient_test_bca, row.efficient_test_ci_low, row.efficient_test_ci_high
            ),
            f"{row.cpu_saving:.1f}x",
        ]
        for row in table.itertuples()
    ]
    lines = [
        "# Federated training: best and cheapest near-best configuration per engine",
        "",
        f"FedAvg with each training speaker of {corpus} as a client; {protocol} split. "
        "Validation BCA chooses the configurations; CPU s is the clients' training CPU time "
        "of that trial; trial is its number in trials.csv (counted from 0, as in Tables 3 and 4); "
        "test BCA is the configuration retrained on train + valid speakers.",
        "",
        markdown_table(header, rows),
        "",
    ]
    return "\n".join(lines)


def front_markdown(front: pd.DataFrame) -> str:
    """The joint Pareto front as Markdown."""
    params = [c for c in front.columns if c.startswith("param_")]
    header = ["engine", "trial", "valid BCA", "CPU s", *[c[len("param_") :] for c in params]]
    rows = [
        [
            str(row["engine"]),
            str(row["trial"]),
            f"{row['valid_bca']:.3f}",
            f"{row['cpu_seconds']:.3g}",
            *[_cell(row[c]) for c in params],
        ]
        for _, row in front.iterrows()
    ]
    return (
        "# Pareto front of the federated studies: validation BCA against client CPU seconds\n\n"
        + markdown_table(header, rows)
        + "\n"
    )


def plot_front(
    path: Path, studies: Mapping[str, Sequence[FinishedTrial]], front: pd.DataFrame
) -> None:
    """Every complete trial by engine (CPU seconds on a log axis) and the joint front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for engine, trials in studies.items():
        shown = [
            t
            for t in trials
            if t.status == TrialStatus.COMPLETE
            and math.isfinite(t.value)
            and math.isfinite(t.cost(COST))
        ]
        axes.scatter(
            [max(t.cost(COST), 1e-3) for t in shown],
            [t.value for t in shown],
            s=20,
            alpha=0.65,
            label=engine,
        )
    if not front.empty:
        axes.step(
            front["cpu_seconds"].clip(lower=1e-3),
            front["valid_bca"],
            where="post",
            color="black",
            linewidth=1.2,
            label="Pareto front (all engines)",
        )
    axes.set_xscale("log")
    axes.set_xlabel("client CPU seconds per trial (log)")
    axes.set_ylabel("validation BCA")
    axes.set_title("Federated SER: validation BCA against client CPU time")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _interval(bca: float, low: float, high: float) -> str:
    if math.isnan(bca):
        return "—"
    if math.isnan(low) or math.isnan(high):
        return f"{bca:.3f}"
    return f"{bca:.3f} [{low:.3f}, {high:.3f}]"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:g}"
    return str(value)


def _engine_path(text: str) -> tuple[str, Path]:
    engine, separator, path = text.partition("=")
    if not separator or not engine or not path:
        raise argparse.ArgumentTypeError(f"expected ENGINE=PATH, got {text!r}")
    return engine, Path(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serhpo fl-report``."""
    parser.add_argument(
        "--trials", type=_engine_path, nargs="+", required=True, help="ENGINE=trials.csv"
    )
    parser.add_argument(
        "--evaluations", type=_engine_path, nargs="*", default=[], help="ENGINE=fl-evaluate JSON"
    )
    add_config_arguments(parser)
    parser.add_argument("--corpus", default="the tuning corpus", help="named in the summary")
    parser.add_argument("--protocol", default="speaker", help="the split protocol")
    parser.add_argument("--out-dir", required=True, type=Path, help="where the tables go")


def run(args: argparse.Namespace) -> int:
    """Run ``serhpo fl-report``."""
    config = read_stage_config(args.config, args.config_json)
    space = SearchSpace.from_config(config.get("search_space"))
    margin = float((config.get("federated") or {}).get("near_best_margin", 0.01))
    studies = {}
    for engine, path in args.trials:
        if not path.is_file():
            raise UserError(f"{path} does not exist; run the fl_hpo rule for {engine} first.")
        studies[engine] = TrialsLog(path, space).read()
    evaluations = {engine: json.loads(path.read_text()) for engine, path in args.evaluations}
    table = summary_table(studies, margin=margin, evaluations=evaluations)
    front = joint_front(studies)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "summary.csv", index=False)
    summary = summary_markdown(table, margin=margin, corpus=args.corpus, protocol=args.protocol)
    (out / "summary.md").write_text(summary)
    write_page(summary, out / "summary.html")
    front.to_csv(out / "pareto.csv", index=False)
    (out / "pareto.md").write_text(front_markdown(front))
    write_page(front_markdown(front), out / "pareto.html")
    plot_front(out / "pareto.png", studies, front)
    print((out / "summary.md").read_text())
    return 0
