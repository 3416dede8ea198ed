"""``serhpo report``: the paper's tables and figures from the studies and evaluations of a run.

Missing inputs are not an error: the tables hold what exists and the log (and each table's
notes) name what is missing, so that a partial run can be looked at.

Example:
    $ serhpo report --trials results/hpo/*/trials.csv --evals results/eval/*/*.json \\
        --config config.yaml --out results/
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pandas as pd

from serhpo.config import add_config_arguments, read_stage_config
from serhpo.errors import UserError
from serhpo.report import headline, markdown, plots, tables
from serhpo.report.inputs import (
    PRETRAINED_MODEL,
    Evaluation,
    ReportSettings,
    Study,
    read_evaluation,
    read_study,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


def build_report(
    *,
    trials_paths: Sequence[Path],
    eval_paths: Sequence[Path],
    settings: ReportSettings,
    out_dir: Path,
    cv_paths: Sequence[Path] = (),
) -> list[Path]:
    """Write Tables 3-6 (CSV and Markdown) under ``out_dir/tables`` and the figures under
    ``out_dir/plots``, and the headline table (``headline.csv|md``).

    Args:
        trials_paths: ``results/hpo/{engine}/trials.csv`` files; paths that do not exist are
            logged and skipped (an unmatched shell glob arrives as one such path).
        eval_paths: ``results/eval/{model}/{corpus}.json`` files, skipped likewise.
        settings: the config keys the report reads.
        out_dir: the results folder.
        cv_paths: ``results/cv/{engine}/pooled.json`` files of a speaker cross-validation
            (their ``per_speaker.csv`` beside them): the headline's pooled rows and the
            per-speaker plot ``plots/cv_per_speaker.png``.

    Returns:
        The files written.

    Raises:
        UserError: an input exists but breaks its stage's contract, or one engine or one
            (model, corpus) pair is given twice.

    Example:
        >>> paths = build_report(trials_paths=[Path("results/hpo/ax/trials.csv")], eval_paths=[],
        ...     settings=ReportSettings(), out_dir=Path("results"))  # doctest: +SKIP
    """
    studies = _read_all(trials_paths, read_study, "trials.csv")
    evaluations = _read_all(eval_paths, read_evaluation, "evaluation")
    _check_unique([s.engine for s in studies], "engine", [s.path for s in studies])
    _check_unique(
        [f"{e.model}/{e.corpus}" for e in evaluations],
        "model/corpus",
        [e.path for e in evaluations],
    )
    hpo_notes, eval_notes = _missing_notes(studies, evaluations, settings=settings)
    for note in (*hpo_notes, *eval_notes):
        logger.warning("%s", note)
    protocols = {e.protocol for e in evaluations} - {settings.protocol}
    if protocols:
        logger.warning(
            "config's split.strategy is %r but evaluations report protocol(s) %s; each table "
            "names the protocol of its own numbers",
            settings.protocol,
            sorted(protocols),
        )

    table_dir, plot_dir = out_dir / "tables", out_dir / "plots"
    table3 = tables.time_to_threshold_table(studies, settings=settings)
    table4 = tables.best_config_table(studies, evaluations, settings=settings)
    table5 = tables.efficiency_table(studies, settings=settings)
    table6 = tables.zero_shot_table(evaluations, settings=settings)
    written = [
        *tables.write_table(
            table3,
            markdown.time_to_threshold_markdown(table3, notes=hpo_notes),
            out_dir=table_dir,
            stem=tables.TABLE3_STEM,
        ),
        *tables.write_table(
            table4,
            markdown.best_config_markdown(table4, notes=[*hpo_notes, *eval_notes]),
            out_dir=table_dir,
            stem=tables.TABLE4_STEM,
        ),
        *tables.write_table(
            table5,
            markdown.efficiency_markdown(table5, notes=hpo_notes),
            out_dir=table_dir,
            stem=tables.TABLE5_STEM,
        ),
        *tables.write_table(
            table6,
            markdown.zero_shot_markdown(table6, notes=eval_notes),
            out_dir=table_dir,
            stem=tables.TABLE6_STEM,
        ),
    ]
    pooled = _read_all(cv_paths, headline.read_pooled, "pooled cross-validation")
    table = headline.headline_table(pooled, evaluations, settings=settings)
    written += tables.write_table(
        table, headline.headline_markdown(table), out_dir=table_dir, stem=headline.HEADLINE_STEM
    )
    if pooled:
        per_speaker = pd.concat(
            [
                pd.read_csv(Path(p["path"]).parent / "per_speaker.csv", dtype={"speaker": str})
                for p in pooled
            ],
            ignore_index=True,
        )
        written.append(
            headline.plot_per_speaker(
                per_speaker, plot_dir / "cv_per_speaker.png", chance=1 / settings.n_classes
            )
        )
    written.append(plots.plot_best_so_far(studies, plot_dir / "best_so_far.png", settings=settings))
    written.append(
        plots.plot_param_effects(studies, plot_dir / "param_effects.png", settings=settings)
    )
    for evaluation in evaluations:
        name = f"confusion_{evaluation.model}_{evaluation.corpus}.png"
        written.append(plots.plot_confusion(evaluation, plot_dir / name))
    logger.info(
        "report: %d studies, %d evaluations -> %d files under %s",
        len(studies),
        len(evaluations),
        len(written),
        out_dir,
    )
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``serhpo report``'s options."""
    parser.add_argument(
        "--trials",
        nargs="*",
        type=Path,
        default=[],
        metavar="CSV",
        help="results/hpo/{engine}/trials.csv files (best.yaml is read from beside each)",
    )
    parser.add_argument(
        "--evals",
        nargs="*",
        type=Path,
        default=[],
        metavar="JSON",
        help="results/eval/{model}/{corpus}.json files",
    )
    parser.add_argument(
        "--cv",
        nargs="*",
        type=Path,
        default=[],
        metavar="JSON",
        help="results/cv/{engine}/pooled.json files of a speaker cross-validation",
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="results folder; tables/ and plots/ are written inside (default: results)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the stage from parsed arguments; return the exit status."""
    config = read_stage_config(args.config, args.config_json)
    settings = ReportSettings.from_config(config)
    build_report(
        trials_paths=args.trials,
        eval_paths=args.evals,
        settings=settings,
        out_dir=args.out,
        cv_paths=args.cv,
    )
    return 0


def _read_all(paths: Sequence[Path], reader: Callable[[Path], T], what: str) -> list[T]:
    found = []
    for path in paths:
        if path.is_file():
            found.append(reader(path))
        else:
            logger.warning("%s %s does not exist; skipped", what, path)
    return found


def _check_unique(names: Sequence[str], what: str, paths: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for name, path in zip(names, paths, strict=True):
        if name in seen:
            raise UserError(
                f"{what} {name!r} is given twice ({seen[name]} and {path}); pass each once."
            )
        seen[name] = path


def _missing_notes(
    studies: Sequence[Study], evaluations: Sequence[Evaluation], *, settings: ReportSettings
) -> tuple[list[str], list[str]]:
    """Say which engines config asked for that have no study, and which evaluations are absent."""
    have = {s.engine for s in studies}
    missing_engines = [e for e in settings.engines if e not in have]
    hpo_notes = []
    if missing_engines:
        hpo_notes.append(
            f"No trials.csv for engine(s) {', '.join(missing_engines)} (listed in hpo.engines): "
            "their rows are left out."
        )
    models = [PRETRAINED_MODEL, *(e for e in settings.engines)]
    evaluated = {(e.model, e.corpus) for e in evaluations}
    missing = [f"{m}/{c}" for m in models for c in settings.corpora if (m, c) not in evaluated]
    eval_notes = []
    if missing:
        eval_notes.append(f"No evaluation for {', '.join(missing)}: left out.")
    return hpo_notes, eval_notes
