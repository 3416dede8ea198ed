"""Time the offline demo from a clean start and say where the time goes, rule by rule.

The demo (``snakemake --profile profiles/demo``: ``config.yaml`` +
``profiles/demo/demo-config.yaml``) runs in a fresh copy of the project, so that nothing of
yours is read or deleted: no ``results/``, ``resources/`` (built corpora and backbone),
``logs/`` or ``.snakemake/`` travel with it. The copy's own package (``workflow/``) is put first
on ``PYTHONPATH``, so the code timed is the code copied.

Per rule it prints the jobs, the sum of their wall seconds (from Snakemake's metadata: each
job's start and end as Snakemake records them), the mean and the longest job; then the whole
run's wall time and the machine's load average (``os.getloadavg()``) at the start and the end
and its mean and maximum during the run (sampled every 5 s): on a shared machine the load says
how far the figure is the demo's own. It also prints the CPU seconds (user + system) of every
process the run waited for: divided by the cores, the least wall time an idle machine needs.

Usage (from the repository root, in the environment that runs the demo):
    python benchmarks/demo_time.py                      # a temporary copy, removed afterwards
    python benchmarks/demo_time.py --workdir /tmp/demo  # keep the copy (results/ inside)
    python benchmarks/demo_time.py --in-place --clean   # here: DELETES results/, logs/, ...
    python benchmarks/demo_time.py --json timing.json --markdown timing.md

Example output (shape only)::

    rule                    jobs     job s   mean s    max s
    fl_hpo                     3     220.3     73.4    101.5
    ...
    wall 826.3 s (13.8 min), 38 jobs, 2 cores; CPU 900 s; load (1 min) 4.56 -> 6.17 ...
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
#: What a run writes; never copied, and removed by ``--in-place --clean``.
GENERATED = ("results", "logs", ".snakemake", "report.html")
#: Not part of the project: never copied.
NOT_COPIED = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "output"}


@dataclass
class RuleTiming:
    """The jobs of one rule: how many, and their wall seconds."""

    rule: str
    jobs: int = 0
    seconds: float = 0.0
    longest: float = 0.0

    @property
    def mean(self) -> float:
        return self.seconds / self.jobs if self.jobs else 0.0


@dataclass
class DemoTiming:
    """One timed demo run."""

    command: list[str]
    cores: int
    wall_s: float
    returncode: int
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    load_samples: list[float] = field(default_factory=list)
    rules: list[RuleTiming] = field(default_factory=list)
    cpu_s: float = 0.0
    date: str = ""
    machine: str = ""

    @property
    def jobs(self) -> int:
        return sum(rule.jobs for rule in self.rules)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["jobs"] = self.jobs
        return data


def copy_project(source: Path, target: Path) -> None:
    """Copy the project's files into ``target``, leaving out what a run generates.

    ``resources/`` keeps only its files at the top (its README), not the built corpora and
    models in its folders.

    Example:
        >>> copy_project(REPO_ROOT, Path(tempfile.mkdtemp()) / "demo")  # doctest: +SKIP
    """

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        skipped = {name for name in names if name in NOT_COPIED or name.endswith(".egg-info")}
        if here == source:
            skipped |= {name for name in names if name in GENERATED}
        if here == source / "resources":
            skipped |= {name for name in names if (here / name).is_dir()}
        return skipped

    shutil.copytree(source, target, ignore=ignore, symlinks=True)


def clean_generated(root: Path) -> None:
    """Remove what a run writes in ``root`` (results/, logs/, .snakemake/, built resources)."""
    for name in GENERATED:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    resources = root / "resources"
    if resources.is_dir():
        for child in resources.iterdir():
            if child.is_dir():
                shutil.rmtree(child)


def rule_timings(workdir: Path) -> list[RuleTiming]:
    """Seconds per rule from Snakemake's metadata records (one record per output file).

    The records of one job's outputs share its rule and job hash; the job's seconds run from
    the earliest start to the latest end among them.
    """
    jobs: dict[tuple[str, int], tuple[float, float]] = {}
    for record_file in (workdir / ".snakemake" / "metadata").rglob("*"):
        if not record_file.is_file():
            continue
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            continue
        start, end = record.get("starttime"), record.get("endtime")
        if record.get("incomplete") or start is None or end is None:
            continue
        key = (record["rule"], record.get("job_hash", 0))
        first, last = jobs.get(key, (start, end))
        jobs[key] = (min(first, start), max(last, end))
    timings: dict[str, RuleTiming] = {}
    for (rule, _), (start, end) in jobs.items():
        timing = timings.setdefault(rule, RuleTiming(rule=rule))
        timing.jobs += 1
        timing.seconds += end - start
        timing.longest = max(timing.longest, end - start)
    return sorted(timings.values(), key=lambda timing: -timing.seconds)


def run_demo(workdir: Path, *, cores: int, extra: list[str], log_path: Path) -> DemoTiming:
    """Run the demo in ``workdir`` and time it, sampling the load average every 5 s."""
    command = [
        "snakemake",
        "--profile",
        "profiles/demo",
        "--cores",
        str(cores),
        *extra,
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(workdir / "workflow"), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    load_start = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    sampler.start()
    with open(log_path, "w") as log:
        returncode = subprocess.call(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    sampler.join()
    return DemoTiming(
        command=command,
        cores=cores,
        wall_s=wall,
        returncode=returncode,
        load_start=load_start,
        load_end=os.getloadavg(),
        load_samples=samples,
        rules=rule_timings(workdir),
        cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs visible, {cores} cores used",
    )


def summary_lines(timing: DemoTiming) -> list[str]:
    """The per-rule table and the totals, as text lines."""
    lines = [f"{'rule':<22}{'jobs':>6}{'job s':>10}{'mean s':>9}{'max s':>9}"]
    for rule in timing.rules:
        lines.append(
            f"{rule.rule:<22}{rule.jobs:>6}{rule.seconds:>10.1f}{rule.mean:>9.1f}"
            f"{rule.longest:>9.1f}"
        )
    job_seconds = sum(rule.seconds for rule in timing.rules)
    samples = timing.load_samples or [timing.load_end[0]]
    lines.append(f"{'all jobs':<22}{timing.jobs:>6}{job_seconds:>10.1f}")
    lines.append(
        f"wall {timing.wall_s:.1f} s ({timing.wall_s / 60:.1f} min), {timing.jobs} jobs, "
        f"{timing.cores} cores; CPU {timing.cpu_s:.0f} s; "
        f"load (1 min) {timing.load_start[0]:.2f} -> "
        f"{timing.load_end[0]:.2f} (mean {sum(samples) / len(samples):.2f}, "
        f"max {max(samples):.2f}); exit {timing.returncode}; {timing.date}; {timing.machine}"
    )
    return lines


def markdown(timing: DemoTiming) -> str:
    """The timing as a Markdown table with its command and conditions."""
    samples = timing.load_samples or [timing.load_end[0]]
    rows = [
        f"`{' '.join(timing.command)}` ({timing.date}; {timing.machine})",
        "",
        "| rule | jobs | job seconds | mean s | longest s |",
        "|---|---|---|---|---|",
    ]
    rows += [
        f"| {rule.rule} | {rule.jobs} | {rule.seconds:.1f} | {rule.mean:.1f} | {rule.longest:.1f} |"
        for rule in timing.rules
    ]
    rows += [
        "",
        f"Wall time {timing.wall_s:.1f} s ({timing.wall_s / 60:.1f} min), {timing.jobs} jobs; "
        f"CPU time (user + system, every process the run waited for) {timing.cpu_s:.0f} s; "
        f"load average (1 min) {timing.load_start[0]:.2f} at the start, "
        f"{timing.load_end[0]:.2f} at the end, mean {sum(samples) / len(samples):.2f}, "
        f"max {max(samples):.2f}.",
    ]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workdir",
        type=Path,
        help="copy the project here and keep it (must not exist or be empty); "
        "default: a temporary copy, removed afterwards",
    )
    where.add_argument(
        "--in-place",
        action="store_true",
        help="run in this repository (needs --clean when it holds results)",
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="with --in-place: delete results/, logs/, .snakemake/ and built resources first",
    )
    parser.add_argument("--cores", type=int, default=2, help="Snakemake --cores (default 2)")
    parser.add_argument("--json", type=Path, help="also write the timing here as JSON")
    parser.add_argument("--markdown", type=Path, help="also write the timing here as Markdown")
    parser.add_argument(
        "snakemake_args",
        nargs="*",
        help="more Snakemake arguments, after --",
    )
    args = parser.parse_args(argv)

    temporary = None
    if args.in_place:
        workdir = REPO_ROOT
        if any((workdir / name).exists() for name in GENERATED) and not args.clean:
            parser.error(
                f"{workdir} holds results of an earlier run (results/, logs/ or .snakemake/); "
                "the demo is timed from a clean start. Add --clean to delete them, or leave "
                "out --in-place to time a fresh copy."
            )
        if args.clean:
            clean_generated(workdir)
    else:
        if args.workdir is None:
            temporary = Path(tempfile.mkdtemp(prefix="serhpo-demo-"))
            workdir = temporary / "serhpo"
        else:
            workdir = args.workdir.resolve()
            if workdir.exists() and any(workdir.iterdir()):
                parser.error(
                    f"--workdir {workdir} is not empty; the demo is timed from a clean copy. "
                    "Name a new folder."
                )
            if workdir.exists():
                workdir.rmdir()
        copy_project(REPO_ROOT, workdir)
    log_path = workdir / "demo_time.log"
    print(f"demo in {workdir} (Snakemake's output: {log_path})", flush=True)
    try:
        timing = run_demo(workdir, cores=args.cores, extra=args.snakemake_args, log_path=log_path)
        print("\n".join(summary_lines(timing)))
        if timing.returncode:
            print(log_path.read_text()[-3000:], file=sys.stderr)
        if args.json:
            args.json.write_text(json.dumps(timing.as_dict(), indent=2) + "\n")
        if args.markdown:
            args.markdown.write_text(markdown(timing))
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return timing.returncode


if __name__ == "__main__":
    sys.exit(main())
