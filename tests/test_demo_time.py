"""benchmarks/demo_time.py: seconds per rule from Snakemake's records, and a clean copy."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("demo_time", REPO_ROOT / "benchmarks/demo_time.py")
demo_time = importlib.util.module_from_spec(spec)
sys.modules["demo_time"] = demo_time  # its dataclasses look their module up there
spec.loader.exec_module(demo_time)


def record(root: Path, output: str, **fields) -> None:
    """A Snakemake metadata record of one output file, as Snakemake 9 writes it."""
    name = base64.urlsafe_b64encode(output.encode()).decode()
    folder = root / ".snakemake" / "metadata"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"incomplete": False, **fields}))


def test_a_jobs_outputs_count_once_and_its_seconds_span_them(tmp_path: Path) -> None:
    # One report job with two outputs, started a few microseconds apart; two evaluate jobs.
    record(tmp_path, "a.html", rule="report", job_hash=1, starttime=100.0004, endtime=112.0)
    record(tmp_path, "a.csv", rule="report", job_hash=1, starttime=100.0, endtime=112.5)
    record(tmp_path, "e1.json", rule="evaluate", job_hash=2, starttime=10.0, endtime=30.0)
    record(tmp_path, "e2.json", rule="evaluate", job_hash=3, starttime=30.0, endtime=40.0)
    record(tmp_path, "x.json", rule="hpo", job_hash=4, starttime=1.0, endtime=None)  # running
    timings = {t.rule: t for t in demo_time.rule_timings(tmp_path)}
    assert set(timings) == {"report", "evaluate"}
    assert (timings["report"].jobs, timings["report"].seconds) == (1, 12.5)
    evaluate = timings["evaluate"]
    assert (evaluate.jobs, evaluate.seconds, evaluate.mean, evaluate.longest) == (2, 30, 15, 20)


def test_the_copy_leaves_out_what_a_run_writes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for path in ["Snakefile", "workflow/rules/a.smk", "resources/README.md",
                 "resources/corpora/emodb/x.wav", "results/eval/a.json", "logs/a.log",
                 ".snakemake/metadata/x", ".venv/bin/python"]:  # fmt: skip
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text("x")
    demo_time.copy_project(project, tmp_path / "copy")
    copied = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*"))
    assert copied == ["Snakefile", "resources", "resources/README.md", "workflow",
                      "workflow/rules", "workflow/rules/a.smk"]  # fmt: skip
