"""Compare two demo ``results/`` folders: the same trials, best configurations and scores?

"No behaviour change" for a refactoring means that the demo, run with the same seed before
and after it, gives the same outputs. This script compares what the pipeline decides and
scores, and ignores what depends on the machine, the clock or the folder:

- every ``trials.csv`` (``results/hpo/...``, ``results/federated/hpo/...``, fold studies):
  the rows in order, each column compared except the timings (``trial_seconds``,
  ``cumulative_seconds``) and the worker number; the ``extra`` JSON column without its
  timing keys (any key with ``seconds`` in it, e.g. ``seconds_train``, ``cpu_seconds``);
- every ``best.yaml``: all keys but ``cumulative_seconds``;
- every JSON of scores: ``results/eval/**``, ``results/federated/eval/**``, ``results/cv/**``
  (fold summaries, pooled scores): all keys, recursively, except timings and durations
  (``seconds``, ``time``, ``duration``), folders and paths, versions, and the feature cache's
  read/computed counts (which depend on what an earlier run left in the cache);
- the speaker-CV prediction tables (``results/cv/**/predictions.csv``, ``per_speaker.csv``,
  ``configs.csv``): every cell.

Numbers are compared exactly unless ``--tolerance`` is given (absolute). A file that one
folder has and the other lacks is a difference. ``pareto.csv`` is not compared: its cost axis
is measured CPU time. Exit status 0: no difference; 1: differences (each named on stdout,
the first ``--show`` of them); 2: a folder is missing or holds none of the files above.

Example:
    $ python benchmarks/compare_outputs.py /path/to/baseline/results results
    compared 31 files: no difference
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

#: Files compared, as globs under the results folder.
PATTERNS: tuple[str, ...] = (
    "**/trials.csv",
    "**/best.yaml",
    "eval/**/*.json",
    "federated/eval/**/*.json",
    "cv/**/*.json",
    "cv/**/predictions.csv",
    "cv/**/per_speaker.csv",
    "cv/**/configs.csv",
)

#: trials.csv columns that are measured, not decided.
TRIALS_IGNORED_COLUMNS = frozenset({"trial_seconds", "cumulative_seconds", "worker"})

#: Keys ignored anywhere in a JSON or YAML file (regular expression, whole key).
IGNORED_KEY = re.compile(
    r".*(seconds|time|duration|_dir|dir|path|version|started|host|pid).*|"
    r"cumulative_seconds|read|computed|loaded|model_dir|split"
)


def _ignored(key: str) -> bool:
    return bool(IGNORED_KEY.fullmatch(str(key)))


def _close(a: Any, b: Any, tolerance: float) -> bool:
    """Equal values; numbers within ``tolerance`` (NaN equals NaN)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b or abs(a - b) <= tolerance
    return a == b


def compare_values(a: Any, b: Any, *, where: str, tolerance: float) -> Iterator[str]:
    """The differences between two parsed JSON/YAML values, each named by its key path.

    Example:
        >>> list(compare_values({"bca": 0.5, "seconds": 3}, {"bca": 0.6, "seconds": 4},
        ...                     where="x.json", tolerance=0.0))
        ['x.json: bca: 0.5 != 0.6']
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if _ignored(key):
                continue
            if key not in a or key not in b:
                side = "first" if key not in a else "second"
                yield f"{where}: {key}: missing in the {side} folder"
                continue
            yield from compare_values(a[key], b[key], where=f"{where}: {key}", tolerance=tolerance)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} items != {len(b)} items"
            return
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from compare_values(x, y, where=f"{where}[{index}]", tolerance=tolerance)
    elif not _close(a, b, tolerance):
        yield f"{where}: {a!r} != {b!r}"


def _cell(text: str) -> Any:
    """A CSV cell as a number, a list of numbers (``0.4;0.5``: history) or the text."""
    try:
        if ";" in text:
            return [float(part) for part in text.split(";")]
        return float(text)
    except ValueError:
        return text


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream)
        return list(reader.fieldnames or []), list(reader)


def compare_csv(a: Path, b: Path, *, where: str, tolerance: float, trials: bool) -> Iterator[str]:
    """The differences between two CSV files, row by row (trials.csv: without timings)."""
    columns_a, rows_a = _read_csv(a)
    columns_b, rows_b = _read_csv(b)
    ignored = TRIALS_IGNORED_COLUMNS if trials else frozenset()
    if [c for c in columns_a if c not in ignored] != [c for c in columns_b if c not in ignored]:
        yield f"{where}: columns {columns_a} != {columns_b}"
        return
    if len(rows_a) != len(rows_b):
        yield f"{where}: {len(rows_a)} rows != {len(rows_b)} rows"
    for number, (row_a, row_b) in enumerate(zip(rows_a, rows_b, strict=False)):
        for column in columns_a:
            if column in ignored:
                continue
            x, y = row_a[column], row_b[column]
            place = f"{where}: row {number}: {column}"
            if trials and column == "extra":
                yield from compare_values(
                    json.loads(x) if x else {},
                    json.loads(y) if y else {},
                    where=place,
                    tolerance=tolerance,
                )
            elif list(compare_values(_cell(x), _cell(y), where=place, tolerance=tolerance)):
                yield f"{place}: {x!r} != {y!r}"


def _load(path: Path) -> Any:
    text = path.read_text()
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def compared_files(folder: Path) -> set[Path]:
    """The files of ``folder`` that are compared, relative to it."""
    found = set()
    for pattern in PATTERNS:
        found |= {p.relative_to(folder) for p in folder.glob(pattern) if p.is_file()}
    return found


def compare_folders(first: Path, second: Path, *, tolerance: float = 0.0) -> tuple[int, list[str]]:
    """Compare two results folders; return how many files were compared and the differences.

    Example:
        >>> count, differences = compare_folders(Path("baseline/results"), Path("results"))
        ... # doctest: +SKIP
    """
    files_a, files_b = compared_files(first), compared_files(second)
    differences = [f"{p}: only in {first}" for p in sorted(files_a - files_b)]
    differences += [f"{p}: only in {second}" for p in sorted(files_b - files_a)]
    for relative in sorted(files_a & files_b):
        a, b = first / relative, second / relative
        where = str(relative)
        if relative.suffix == ".csv":
            differences += compare_csv(
                a, b, where=where, tolerance=tolerance, trials=relative.name == "trials.csv"
            )
        else:
            differences += compare_values(_load(a), _load(b), where=where, tolerance=tolerance)
    return len(files_a | files_b), differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="a results/ folder (e.g. the baseline)")
    parser.add_argument("second", type=Path, help="another results/ folder")
    parser.add_argument(
        "--tolerance", type=float, default=0.0, help="absolute tolerance for numbers (default 0)"
    )
    parser.add_argument("--show", type=int, default=50, help="differences to print (default 50)")
    args = parser.parse_args(argv)
    for folder in (args.first, args.second):
        if not folder.is_dir() or not compared_files(folder):
            print(
                f"{folder}: not a results folder with trials.csv, best.yaml or evaluation "
                "JSON files; expected the results/ folder of a demo run.",
                file=sys.stderr,
            )
            return 2
    count, differences = compare_folders(args.first, args.second, tolerance=args.tolerance)
    if not differences:
        print(f"compared {count} files: no difference")
        return 0
    for line in differences[: args.show]:
        print(line)
    more = len(differences) - args.show
    print(
        f"compared {count} files: {len(differences)} differences"
        + (f" ({more} more not shown)" if more > 0 else "")
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
