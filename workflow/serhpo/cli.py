"""The ``serhpo`` command: one sub-command per pipeline stage.

Each stage lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; the module is imported only when its stage runs, so that
``serhpo split`` does not pay for importing torch.

Example:
    $ serhpo split results/manifests/emodb.csv results/splits/emodb.csv --strategy speaker
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from serhpo.errors import UserError

#: ``serhpo --help`` opens with this (plain text: argparse prints it as written).
DESCRIPTION = """\
serhpo: speech emotion recognition with pretrained speech models and
hyper-parameter optimisation. Each stage of the Snakemake pipeline is also a
command that runs on its own; \"serhpo STAGE --help\" lists its options and
their defaults."""

#: ... and ends with this (lines under 80 characters, for a terminal).
EPILOG = """\
examples:
  # label recordings with a model the pipeline trained
  serhpo predict results/final/optuna/model talk.wav --output labels.csv
  # speaker-independent train / valid / test split of a prepared corpus
  serhpo split results/manifests/emodb.csv emodb-split.csv --strategy speaker

The whole pipeline runs with Snakemake (the demo: snakemake --profile
profiles/demo). Read README.md first: "First commands", then one section per
stage."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that keeps descriptions' line breaks and names every option's default.

    A default is appended as ``(default: ...)`` unless the help already names one, the option is
    required, or there is nothing to show (no value, an empty list, an off flag); a list default
    is written as it would be typed (``--parts train valid``), ``None`` in it as ``none``.

    Example:
        >>> parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
        >>> _ = parser.add_argument("--seed", type=int, default=0, help="random seed")
        >>> "random seed (default: 0)" in parser.format_help()
        True
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or action.required
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default == []
        ):
            return text
        if isinstance(default, list | tuple):
            shown = " ".join("none" if value is None else str(value) for value in default)
        else:
            shown = str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


#: stage name -> (module implementing it, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "check-config": (
        "serhpo.config",
        "check config files as the workflow does before any job, naming file, line and key",
    ),
    "download": (
        "serhpo.corpora.download",
        "download and unpack a corpus (resumable, checksummed)",
    ),
    "synthesize": ("serhpo.corpora.synthetic", "write a synthetic corpus in a real corpus' layout"),
    "export-table": (
        "serhpo.corpora.export",
        "describe a corpus folder by a CSV table (or an audformat database), one row per file",
    ),
    "prepare": ("serhpo.prepare", "decode, downmix and resample a corpus; write its manifest"),
    "split": ("serhpo.splits", "assign utterances to train, valid and test"),
    "build-tiny-backbone": (
        "serhpo.backbones.tiny",
        "build a tiny random wav2vec2 SpeechBrain model",
    ),
    "fetch-backbone": (
        "serhpo.backbones.fetch",
        "download the pretrained SpeechBrain/wav2vec2 models",
    ),
    "cache-features": ("serhpo.features", "compute the frozen parts' features once"),
    "train": ("serhpo.training", "train one configuration and print its validation scores"),
    "hpo": ("serhpo.tune", "run one engine's hyper-parameter study"),
    "retrain": ("serhpo.final", "retrain a study's best configuration on train + valid"),
    "evaluate": ("serhpo.evaluation", "score a model on a corpus: in-corpus test or zero-shot"),
    "cv-fold": (
        "serhpo.crossval",
        "retrain an outer fold's best configuration and score its held-out speakers",
    ),
    "cv-pool": (
        "serhpo.cvpool",
        "pool the outer folds: BCA with a speaker bootstrap, per-speaker table",
    ),
    "fl-evaluate": (
        "serhpo.federated.evaluate",
        "retrain a federated study's best and cheapest near-best configurations and score them",
    ),
    "fl-report": (
        "serhpo.federated.summary",
        "summarise the federated studies: per-engine table and joint Pareto front",
    ),
    "predict": ("serhpo.predict", "label recordings with a trained model"),
    "report": ("serhpo.report", "the paper's tables and plots"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per available stage."""
    parser = argparse.ArgumentParser(
        prog="serhpo", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (module_name, help_text) in STAGES.items():
        stage_parser = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        stage_parser.set_defaults(_module=module_name, _stage=name)
    return parser


def _stage_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("parser has no stages")


def main(argv: list[str] | None = None) -> int:
    """Run one stage; return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Parse the stage name first, then let the stage's module add its own options.
    # -h is left out of this first pass so that a stage's --help lists the stage's own options.
    known, _ = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")] or ["--help"])
    module = importlib.import_module(known._module)
    module.add_arguments(_stage_parsers(parser)[known._stage])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(module.run(args) or 0)
    except UserError as error:
        logging.getLogger("serhpo").error("%s", error)
        print(f"serhpo {args._stage}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
