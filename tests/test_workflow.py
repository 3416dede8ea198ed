"""The Snakemake workflow itself: lint, config validation, the demo's data stage and rerun scope.

These run `snakemake` in a copy of the workflow files inside a temporary folder, so that the
project's own results/ and resources/ are never touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.snakemake

# Small enough to keep the suite fast, big enough for a speaker split (3 parts).
SMALL = {
    "corpora": {
        name: {"source": "synthetic", "synthetic": {"speakers": 4, "per_speaker_label": 3}}
        for name in ("emodb", "ravdess", "cremad")
    },
    "split": {"strategy": "speaker"},
}
DATA_TARGETS = [f"results/splits/{c}.csv" for c in ("emodb", "ravdess", "cremad")]


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


@pytest.fixture(scope="module")
def built_demo(tmp_path_factory: pytest.TempPathFactory, snakemake_tools) -> Path:
    workdir = snakemake_tools.copy(tmp_path_factory.mktemp("demo"))
    result = snakemake_tools.run(workdir, *DATA_TARGETS, configs=[SMALL])
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_lint_is_clean(snakemake_tools) -> None:
    result = subprocess.run(
        [*snakemake_tools.command, "--lint"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_demo_builds_manifests_and_splits_of_three_corpora(built_demo: Path) -> None:
    for corpus in ("emodb", "ravdess", "cremad"):
        manifest = pd.read_csv(
            built_demo / f"results/manifests/{corpus}.csv", keep_default_na=False
        )
        split = pd.read_csv(built_demo / f"results/splits/{corpus}.csv", dtype={"speaker": str})
        assert len(manifest) > 0 and set(manifest["corpus"]) == {corpus}
        if corpus != "emodb":  # a zero-shot corpus is not split: every labelled row is test
            assert set(split["part"]) == {"test"}
            assert len(split) == (manifest["label"] != "").sum()
            continue
        assert set(split["part"]) == {"train", "valid", "test"}
        speakers = split.groupby("part")["speaker"].apply(set)
        assert not (speakers["train"] & speakers["test"])
        assert (manifest["path"].map(lambda p: (built_demo / p).is_file())).all()


def test_changing_a_split_key_reruns_only_the_split(built_demo: Path, snakemake_tools) -> None:
    changed = {**SMALL, "split": {"strategy": "speaker", "valid_fraction": 0.3}}
    result = snakemake_tools.run(built_demo, "-n", *DATA_TARGETS, configs=[changed])
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout)
    assert jobs.get("split_corpus") == 3
    assert "prepare_corpus" not in jobs and "synthesize_corpus" not in jobs


def test_nothing_reruns_when_nothing_changed(built_demo: Path, snakemake_tools) -> None:
    result = snakemake_tools.run(built_demo, "-n", *DATA_TARGETS, configs=[SMALL])
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def report_rule_levels(dot: str) -> dict[str, set[int]]:
    """Each rule's levels in the job DAG (``snakemake --dag``), as the report draws them.

    The report's rule graph keeps one job per rule per level of the DAG's topological layering
    (a job's level: one above its deepest input's), so a rule whose jobs sit on two levels is
    drawn twice.
    """
    rule = {int(m[1]): m[2] for m in re.finditer(r'^\s*(\d+)\[label = "(\w+)', dot, re.M)}
    inputs: dict[int, set[int]] = {node: set() for node in rule}
    for source, target in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M):
        inputs[int(target)].add(int(source))
    level: dict[int, int] = {}

    def level_of(node: int) -> int:
        if node not in level:
            level[node] = 1 + max((level_of(i) for i in inputs[node]), default=-1)
        return level[node]

    levels: dict[str, set[int]] = {}
    for node, name in rule.items():
        levels.setdefault(name, set()).add(level_of(node))
    return levels


def test_the_report_draws_every_rule_of_the_demo_once(tmp_path: Path, snakemake_tools) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    result = snakemake_tools.run(workdir, "--dag")
    assert result.returncode == 0, result.stderr[-3000:]
    levels = report_rule_levels(result.stdout)
    assert {"evaluate", "evaluate_pretrained", "retrain_final", "fl_hpo"} <= set(levels)
    assert {rule: sorted(found) for rule, found in levels.items() if len(found) > 1} == {}
    # One evaluate job per model (every corpus in it), after the model's retraining.
    assert len(re.findall(r'label = "evaluate[\\"]', result.stdout)) == 5
    assert min(levels["evaluate"]) > min(levels["retrain_final"])


def test_a_bad_config_key_stops_before_any_work(tmp_path: Path, snakemake_tools) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    result = snakemake_tools.run(workdir, configs=[{"split": {"strategy": "random"}}])
    assert result.returncode != 0
    assert "'random' is not one of ['stratified', 'speaker']" in result.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"search_space": {"maxlen": {"choices": []}}},
         "config key search_space.maxlen.choices: found []; expected a list of at least two"),
        ({"corpora": {"emodb": {"source": "data/emodb"}}},
         "config key corpora.emodb.source: found 'data/emodb', but "),
    ],
)  # fmt: skip
def test_a_bad_search_space_or_a_missing_source_folder_stops_the_dry_run(
    tmp_path: Path, snakemake_tools, config: dict, message: str
) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    result = snakemake_tools.run(workdir, "-n", configs=[config])
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Job stats" not in result.stdout


def test_an_extra_configfile_adds_to_the_demo_profile_instead_of_replacing_it(
    tmp_path: Path, snakemake_tools
) -> None:
    # Issue 17: --configfile replaces the profile's list of config files. Before the preset, this
    # run was config.yaml (the paper's set-up) plus mine.yaml, and planned the paper's downloads.
    workdir = snakemake_tools.copy(tmp_path)
    (workdir / "mine.yaml").write_text(yaml.safe_dump({"hpo": {"engines": ["optuna"]}}))
    commands = {
        "profile": ["--profile", "profiles/demo", "--configfile", "mine.yaml"],
        "flag": ["--cores", "2", "--config", "preset=demo", "--configfile", "mine.yaml"],
    }
    for name, options in commands.items():
        result = subprocess.run(
            [*snakemake_tools.command, "-n", *options],
            cwd=workdir, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, (name, result.stderr[-3000:])
        jobs = planned_jobs(result.stdout)
        assert "download_corpus" not in jobs and "fetch_backbone" not in jobs, (name, jobs)
        assert jobs["synthesize_corpus"] == 4 and jobs["build_tiny_backbone"] == 1, (name, jobs)
        assert jobs["hpo"] == 1, (name, jobs)  # mine.yaml still applies, after the demo's file


def test_an_unknown_preset_stops_the_run_naming_the_choices(
    tmp_path: Path, snakemake_tools
) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    result = subprocess.run(
        [*snakemake_tools.command, "-n", "--cores", "2", "--config", "preset=dmeo"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "config key preset is 'dmeo'; expected one of ['demo', 'whisper']" in said
    assert "Job stats" not in result.stdout


def test_the_readme_says_how_to_unlock_after_a_kill_and_no_profile_drops_the_lock() -> None:
    # Issue 15: a killed run leaves a lock that the next run stops on. nolock would hide that
    # but let two runs in one folder write the same files, so the README explains --unlock.
    readme = (REPO_ROOT / "README.md").read_text()
    reliability = readme.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    assert "snakemake --profile profiles/demo --unlock" in reliability
    for profile in ("demo", "slurm"):
        settings = yaml.safe_load((REPO_ROOT / f"profiles/{profile}/config.yaml").read_text())
        assert settings.get("rerun-incomplete") is True and not settings.get("nolock")


def test_rules_are_formatted_with_snakefmt() -> None:
    files = ["Snakefile", *sorted(str(p) for p in (REPO_ROOT / "workflow/rules").glob("*.smk"))]
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_corpus_without_a_reader_stops_before_any_work(tmp_path: Path, snakemake_tools) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    result = snakemake_tools.run(workdir, configs=[{"corpora": {"savee": {"source": "SAVEE"}}}])
    assert result.returncode != 0
    assert "corpus 'savee' has no reader" in result.stderr
    assert "corpora.savee.format to table" in result.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def test_a_local_table_corpus_is_prepared_and_editing_its_table_reruns_it(
    tmp_path: Path, snakemake_tools
) -> None:
    from serhpo.corpora.synthetic import synthesize_corpus

    workdir = snakemake_tools.copy(tmp_path)
    synthesize_corpus(
        "table", workdir / "data/mine", n_speakers=3, utterances_per_speaker_label=1, seed=0,
        duration_s=(0.5, 0.6),
    )  # fmt: skip
    table = pd.read_csv(workdir / "data/mine/table.csv", dtype=str)
    table.rename(columns={"emotion": "mood"}).to_csv(workdir / "data/mine/labels.csv", index=False)
    mine = {
        "source": "data/mine",
        "format": "table",
        "table": "labels.csv",
        "columns": {"label": "mood"},
        "label_map": {"angry": "anger", "happy": "happiness", "sad": "sadness", "ps": None},
    }
    config = {"corpora": {"mine": mine}}
    target = "results/manifests/mine.csv"
    result = snakemake_tools.run(workdir, target, configs=[config])
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = pd.read_csv(workdir / target, keep_default_na=False)
    assert len(manifest) == 21 and set(manifest["word"]) <= set(table["word"])
    assert (manifest["label"] == "").sum() == 3  # ps, dropped and counted

    table.iloc[:-1].rename(columns={"emotion": "mood"}).to_csv(
        workdir / "data/mine/labels.csv", index=False
    )
    result = snakemake_tools.run(workdir, "-n", target, configs=[config])
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result.stdout) == {"prepare_corpus": 1}


# ---- the SLURM profile: every job asks for its rule's resources ---------------------------

TRAINING_RULES = {"hpo", "hpo_worker", "retrain_final"}
# (threads, mem_mb, runtime) the heavy rules declare; the profile must not change them.
HEAVY = {
    "cache_features": (2, 8000, 240),
    "hpo_worker": (1, 8000, 1440),
    "hpo": (1, 8000, 1440),
    "retrain_final": (2, 8000, 240),
    "evaluate": (2, 6000, 120),
}


def dry_run_jobs(output: str) -> list[dict]:
    """Each job of a dry run: rule, wildcards, threads and resources."""
    jobs = []
    for block in re.split(r"^\[[^\]]+\]\n", output, flags=re.MULTILINE)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule is None:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.MULTILINE))
        resources = dict(
            item.split("=", 1) for item in fields.get("resources", "").split(", ") if "=" in item
        )
        wildcards = dict(
            item.split("=", 1) for item in fields.get("wildcards", "").split(", ") if "=" in item
        )
        jobs.append(
            {
                "rule": rule[1],
                "wildcards": wildcards,
                "threads": int(fields.get("threads", 1)),
                "resources": resources,
            }
        )
    return jobs


def slurm_dry_run(workdir: Path, snakemake_tools, extra: dict) -> subprocess.CompletedProcess:
    (workdir / "extra.yaml").write_text(yaml.safe_dump(extra))
    return subprocess.run(
        # --cores: a dry run caps threads at the local cores; the SLURM jobs are not capped.
        [*snakemake_tools.command, "-n", "--profile", "profiles/slurm", "--cores", "64",
         "--configfile", "config.yaml", "profiles/demo/demo-config.yaml", "extra.yaml"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_slurm_profile_gives_every_job_its_rules_resources(
    tmp_path: Path, snakemake_tools
) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    extra = {
        "hpo": {"n_workers": 2},
        "training": {"device": "cuda"},
        "compute": {"gpu_model": "a100"},
    }
    result = slurm_dry_run(workdir, snakemake_tools, extra)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [job for job in dry_run_jobs(result.stdout) if job["rule"] != "all"]
    assert {job["rule"] for job in jobs} >= set(HEAVY) | {"prepare_corpus", "report"}
    for job in jobs:  # declared by every rule: the profile's defaults are never used
        assert {"mem_mb", "runtime"} <= set(job["resources"]), job
        if job["rule"] in TRAINING_RULES:
            assert (job["resources"]["gpu"], job["resources"]["gpu_model"]) == ("1", "a100")
        else:  # caching and evaluation run on the CPU
            assert "gpu" not in job["resources"], job
        if job["rule"] in HEAVY:
            threads, mem_mb, runtime = HEAVY[job["rule"]]
            assert job["threads"] == threads, job
            assert int(job["resources"]["mem_mb"]) == mem_mb, job
            assert int(job["resources"]["runtime"]) == runtime, job
    workers = sorted(
        (job["wildcards"]["engine"], job["wildcards"]["worker"])
        for job in jobs
        if job["rule"] == "hpo_worker"
    )
    # Two jobs share each study that workers can share; Ax and Hyperopt run in their hpo job.
    assert workers == [(e, w) for e in ("grid", "optuna", "random") for w in ("0", "1")]
    assert sorted(j["wildcards"]["engine"] for j in jobs if j["rule"] == "hpo") == sorted(
        ["ax", "hyperopt", "optuna", "grid", "random"]
    )
    said = result.stdout + result.stderr
    assert "ax and hyperopt propose each trial from every earlier result" in said


def test_a_gpu_without_a_gpu_device_is_refused(tmp_path: Path, snakemake_tools) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    result = slurm_dry_run(workdir, snakemake_tools, {"compute": {"gpu": 1}})
    assert result.returncode != 0
    assert "compute.gpu is 1 but training.device is cpu" in result.stdout + result.stderr


# ---- speaker cross-validation: outer folds as wildcards, pooled into the headline ---------

CV_ENGINES = ["random"]
CV_DAG = {
    # The tuning corpus only: the zero-shot corpora are removed (null), the DAG stays small.
    "corpora": {
        "emodb": {"source": "synthetic", "synthetic": {"speakers": 6, "per_speaker_label": 2}},
        "ravdess": None,
        "cremad": None,
        "tess": None,
    },
    "split": {"strategy": "speaker", "folds": 3, "inner_folds": 2},
    "backbone": {"name": "egemaps"},
    "search_space": {"lr": {"type": "loguniform", "low": 1.0e-3, "high": 1.0e-2}},
    "training": {"batch_size": 8, "threads": 1, "maxlen": 16000, "epochs": 4},
    "hpo": {"engines": CV_ENGINES, "n_trials": 2},
    "evaluation": {"bootstrap": 50},
    "federated": {"enabled": False},
}


@pytest.fixture(scope="module")
def cv_dag(tmp_path_factory: pytest.TempPathFactory, snakemake_tools) -> Path:
    workdir = snakemake_tools.copy(tmp_path_factory.mktemp("cv"))
    result = snakemake_tools.run(workdir, configs=[CV_DAG])
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.mark.slow  # the speaker-CV DAG (cv_dag), about 40 s
def test_speaker_cv_pools_every_speaker_once_into_the_headline(cv_dag: Path) -> None:
    from serhpo.metrics import balanced_accuracy

    results = cv_dag / "results"
    split = pd.read_csv(results / "splits/emodb.csv", dtype={"speaker": str})
    for engine in CV_ENGINES:
        predictions = pd.read_csv(results / f"cv/{engine}/predictions.csv", dtype={"speaker": str})
        assert sorted(predictions["utterance_id"]) == sorted(split["utterance_id"])
        for fold in range(3):
            trials = pd.read_csv(results / f"hpo/{engine}/fold-{fold}/trials.csv")
            assert len(trials) == 2 and "fold_values" in trials.columns
            summary = yaml.safe_load((results / f"cv/{engine}/fold-{fold}/fold.json").read_text())
            held_out = set(split.loc[split["fold"] == fold, "speaker"])
            assert set(summary["held_out_speakers"]) == held_out
            assert not held_out & set(summary["training_speakers"])
        pooled = yaml.safe_load((results / f"cv/{engine}/pooled.json").read_text())
        labels = sorted(set(predictions["label"]))
        index = {label: i for i, label in enumerate(labels)}
        bca = balanced_accuracy(
            predictions["label"].map(index), predictions["predicted"].map(index)
        )
        headline = pd.read_csv(results / "tables/headline.csv")
        row = headline[
            (headline["engine"] == engine)
            & (headline["protocol"] != "single split (paper protocol)")
        ]
        assert row["protocol"].tolist() == ["speaker CV, 3 folds"]
        assert row["bca"].iloc[0] == pytest.approx(bca) == pooled["bca"]
        assert row["ci_low"].iloc[0] <= bca <= row["ci_high"].iloc[0]
    assert "single split (paper protocol)" in (results / "tables/headline.md").read_text()
    assert (results / "plots/cv_per_speaker.png").stat().st_size > 5000


@pytest.mark.slow  # the speaker-CV DAG (cv_dag), about 40 s
def test_speaker_cv_reruns_exactly_what_a_key_reaches(cv_dag: Path, snakemake_tools) -> None:
    unrelated = {**CV_DAG, "federated": {"enabled": False, "n_trials": 3}}  # not run here
    result = snakemake_tools.run(cv_dag, "-n", configs=[unrelated])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
    inner = {**CV_DAG, "split": {**CV_DAG["split"], "inner_folds": 3}}
    result = snakemake_tools.run(cv_dag, "-n", configs=[inner])
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout)
    assert jobs == {"hpo_cv": 3, "cv_fold": 3, "cv_pool": 1, "report": 1, "all": 1}


def test_each_outer_fold_is_a_slurm_job_with_the_training_resources(
    tmp_path: Path, snakemake_tools
) -> None:
    workdir = snakemake_tools.copy(tmp_path)
    extra = {"split": {"strategy": "speaker", "folds": 3}, "training": {"device": "cuda"}}
    result = slurm_dry_run(workdir, snakemake_tools, extra)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dry_run_jobs(result.stdout)
    engines = ["ax", "hyperopt", "optuna", "grid", "random"]
    for rule in ("hpo_cv", "cv_fold"):
        folds = sorted(
            (job["wildcards"]["engine"], job["wildcards"]["fold"])
            for job in jobs
            if job["rule"] == rule
        )
        assert folds == sorted((e, f) for e in engines for f in ("0", "1", "2"))
        for job in (job for job in jobs if job["rule"] == rule):
            assert job["resources"]["gpu"] == "1" and int(job["resources"]["mem_mb"]) == 8000
    assert sorted(j["wildcards"]["engine"] for j in jobs if j["rule"] == "cv_pool") == sorted(
        engines
    )


def test_an_override_file_removes_a_corpus_and_a_parameter_and_pins_one(
    tmp_path: Path, snakemake_tools
) -> None:
    # config.yaml alone downloads EmoDB, RAVDESS, CREMA-D and wav2vec2; this override keeps
    # two local corpora, drops CREMA-D with null, and uses a family without a download.
    workdir = snakemake_tools.copy(tmp_path)
    override = {
        "corpora": {
            "cremad": None,
            "emodb": {"source": "synthetic"},
            "ravdess": {"source": "synthetic"},
        },
        "backbone": {"name": "egemaps"},
        "search_space": {"unfreeze": None, "maxlen": 48000},
    }
    (workdir / "override.yaml").write_text(yaml.safe_dump(override))
    result = subprocess.run(
        [*snakemake_tools.command, "-n", "-p", "--cores", "2", "--configfile", "config.yaml",
         "override.yaml"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout)
    assert "download_corpus" not in jobs and "fetch_backbone" not in jobs
    assert jobs["report"] == 1 and jobs["prepare_corpus"] == 2
    assert "corpus=cremad" not in result.stdout and "/cremad." not in result.stdout
    # The pinned value is cached for the trials: cache_features reads it from its JSON.
    cache_commands = [line for line in result.stdout.splitlines() if "cache-features" in line]
    assert cache_commands and all(
        '"search_space":{"maxlen":48000,"padding":true}' in line for line in cache_commands
    )
    said = result.stdout + result.stderr
    assert "removed by null in an override file: corpora.cremad, search_space.unfreeze" in said
