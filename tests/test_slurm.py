"""The demo DAG on a real single-node SLURM cluster, with HPO workers as separate SLURM jobs.

The test starts munged, slurmctld and slurmd on this machine (Debian's ``slurm-wlm`` and
``munge``; as root), runs a small demo DAG through Snakemake's SLURM executor with
``profiles/slurm``, and checks that every job reached SLURM with its rule's resources, that the
HPO studies shared by two worker jobs finished their budget with no trial lost or run twice, and
that the outputs match a local run. It skips, saying why, where SLURM cannot be started: not
root, not installed, a real cluster's /etc/slurm/slurm.conf present (left alone), or daemons
that do not come up. Everything it started is stopped, and its slurm.conf removed, even when a
check fails.

    pytest -m slurm          # this test alone
    pytest -m "not slurm"    # everything else

Measured 2026-11-26 on the 2-core build machine while two other test suites ran there: 29 SLURM
jobs in 290-340 s (the node idle for about 90 s of it: the executor polls job states less often
while none finishes); the whole suite, this test included, 13.5 minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

import serhpo

pytestmark = [pytest.mark.slurm, pytest.mark.snakemake, pytest.mark.slow]

PACKAGE_PARENT = Path(serhpo.__file__).resolve().parents[1]
SLURM_CONF = Path("/etc/slurm/slurm.conf")  # where srun inside a job looks (see below)
MARKER = "# Written by serhpo's tests/test_slurm.py for a throw-away test cluster."
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo", "scancel", "srun")
# Two engines whose studies two worker jobs share: random search is deterministic (compared
# with a local run trial by trial), Optuna's proposals depend on which worker asks when (only
# its budget is checked). That Ax and Hyperopt stay in one job, the dry-run test checks.
ENGINES = ["optuna", "random"]
N_TRIALS = 6
SMALL_DAG = {
    "corpora": {
        "emodb": {"source": "synthetic", "synthetic": {"speakers": 5, "per_speaker_label": 2}},
        "ravdess": {"source": "synthetic", "synthetic": {"speakers": 3, "per_speaker_label": 2}},
        "cremad": {"source": "synthetic", "synthetic": {"speakers": 3, "per_speaker_label": 2}},
    },
    "search_space": {
        "lr": {"type": "loguniform", "low": 1.0e-3, "high": 1.0e-2},
        "epochs": {"type": "int", "low": 1, "high": 2},
        "unfreeze": {"type": "int", "low": 0, "high": 1},
        "maxlen": {"type": "choice", "choices": [16000, 24000]},
    },
    "hpo": {"engines": ENGINES, "n_trials": N_TRIALS, "n_sobol": 1, "n_workers": 2},
    "evaluation": {"bootstrap": 50},
    # The demo's federated studies test nothing SLURM-specific (one job per engine, like the
    # hpo studies without workers) and would add minutes: switched off here.
    "federated": {"enabled": False},
}
CORPORA = [*SMALL_DAG["corpora"], "tess"]  # tess: the demo's table corpus
# CPUs the node declares (SlurmdParameters=config_overrides lets it declare more than it has),
# so that the four worker jobs start together and share their studies. Memory is recorded with
# each job but not reserved (CR_Core): four workers' 8 GB exceed a 24 GB test machine.
CPUS = 4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


@dataclass
class Cluster:
    """A single-node SLURM cluster on this machine, in a temporary folder.

    The configuration has to be /etc/slurm/slurm.conf: Snakemake's job step clears SLURM_*
    variables (SLURM_CONF too) before its srun, which then reads only the default path.
    """

    folder: Path
    binaries: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    munge_dir: Path | None = None
    wrote_conf: bool = False
    made_conf_dir: bool = False

    def start(self) -> None:
        """Start munged, slurmctld and slurmd; raise RuntimeError saying what failed."""
        # munged wants every folder above its socket open to all: not pytest's 0700 tmp.
        self.munge_dir = Path(tempfile.mkdtemp(prefix="serhpo-munge-"))
        self.munge_dir.chmod(0o755)
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        socket_path = self.munge_dir / "munge.sock"
        self._spawn(
            "munged",
            "--foreground",
            f"--socket={socket_path}",
            f"--key-file={key}",
            f"--pid-file={self.munge_dir / 'munged.pid'}",
            f"--log-file={self.folder / 'munged.log'}",
            f"--seed-file={self.munge_dir / 'munged.seed'}",
        )
        self._wait(lambda: socket_path.exists(), "munged to open its socket", "munged")
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(exist_ok=True)
        host = socket.gethostname().split(".")[0]
        memory = _memory_mb() - 2048
        conf = f"""{MARKER}
ClusterName=serhpotest
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
AccountingStorageType=accounting_storage/none
StateSaveLocation={self.folder / "state"}
SlurmdSpoolDir={self.folder / "spool"}
SlurmctldPidFile={self.folder / "slurmctld.pid"}
SlurmdPidFile={self.folder / "slurmd.pid"}
SlurmctldLogFile={self.folder / "slurmctld.log"}
SlurmdLogFile={self.folder / "slurmd.log"}
MinJobAge=3600
ReturnToService=2
SlurmdParameters=config_overrides
NodeName={host} CPUs={CPUS} RealMemory={memory} State=UNKNOWN
PartitionName=serhpotest Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        if not SLURM_CONF.parent.is_dir():
            SLURM_CONF.parent.mkdir(parents=True)
            self.made_conf_dir = True
        SLURM_CONF.write_text(conf)
        self.wrote_conf = True
        self._spawn("slurmctld", "-D", "-c")
        self._wait(lambda: self._ok("scontrol", "ping"), "slurmctld to answer", "slurmctld")
        self._spawn("slurmd", "-D")
        self._wait(
            lambda: self._query("sinfo", "-h", "-o", "%T").strip() == "idle",
            "the node to become idle",
            "slurmd",
        )

    def _spawn(self, name: str, *arguments: str) -> None:
        log = open(self.folder / f"{name}.out", "w")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(
            [self.binaries[name], *arguments], stdout=log, stderr=subprocess.STDOUT
        )

    def _wait(self, ready, what: str, daemon: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.processes[daemon].poll() is not None:
                break
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                if ready():
                    return
            time.sleep(0.3)
        output = (self.folder / f"{daemon}.out").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"waited {timeout:.0f} s for {what}; {daemon} said:\n{output}")

    def _query(self, *command: str) -> str:
        return subprocess.run(
            [self.binaries[command[0]], *command[1:]],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout

    def _ok(self, *command: str) -> bool:
        return (
            subprocess.run(
                [self.binaries[command[0]], *command[1:]], capture_output=True, timeout=20
            ).returncode
            == 0
        )

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields of one job (kept MinJobAge seconds after its end)."""
        text = self._query("scontrol", "show", "job", "-o", job_id)
        return dict(item.split("=", 1) for item in text.split() if "=" in item)

    def stop(self) -> None:
        """Cancel the jobs, stop the daemons this test started, remove its slurm.conf."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                jobs = self._query("squeue", "-h", "-o", "%i").split()
                if jobs:
                    subprocess.run([self.binaries["scancel"], *jobs], timeout=20)
                    deadline = time.time() + 20
                    while self._query("squeue", "-h", "-o", "%i").split() and (
                        time.time() < deadline
                    ):
                        time.sleep(0.5)
        for name in reversed(DAEMONS):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.wrote_conf and SLURM_CONF.read_text().startswith(MARKER):
            SLURM_CONF.unlink()
            if self.made_conf_dir:
                with contextlib.suppress(OSError):
                    SLURM_CONF.parent.rmdir()
        if self.munge_dir is not None:
            shutil.rmtree(self.munge_dir, ignore_errors=True)


def _why_not() -> str | None:
    """Why a test cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "the SLURM test starts munged, slurmctld and slurmd as root; this is not root"
    missing = [name for name in (*DAEMONS, *CLIENTS) if _which(name) is None]
    if missing:
        return (
            f"SLURM is not installed here ({', '.join(missing)} not found); on Debian: "
            f"apt-get install slurm-wlm munge"
        )
    if SLURM_CONF.exists() and not SLURM_CONF.read_text(errors="replace").startswith(MARKER):
        return (
            f"{SLURM_CONF} exists (a real cluster's configuration?) and is left alone; the test "
            f"cluster needs that path for its own configuration"
        )
    if _memory_mb() - 2048 < 8000:
        return f"the HPO jobs ask for 8000 MB and this machine has {_memory_mb()} MB"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.is_file()), None
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    binaries = {name: str(_which(name)) for name in (*DAEMONS, *CLIENTS)}
    started = Cluster(tmp_path_factory.mktemp("slurm"), binaries)
    try:
        try:
            started.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            pytest.skip(f"SLURM could not be started here: {error}")
        yield started
    finally:
        started.stop()


def _environment() -> dict[str, str]:
    """This process' environment for snakemake and, through sbatch --export=ALL, its jobs:
    the serhpo code under test first on PYTHONPATH, this interpreter's scripts on PATH."""
    environment = dict(os.environ)
    paths = [str(PACKAGE_PARENT), *filter(None, [environment.get("PYTHONPATH")])]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment["PATH"]])
    return environment


def _configs(workdir: Path, extra: dict) -> list[str]:
    (workdir / "extra.yaml").write_text(yaml.safe_dump(extra))
    return ["--configfile", "config.yaml", "profiles/demo/demo-config.yaml", "extra.yaml"]


@dataclass
class Runs:
    """The SLURM run and the local run it is compared with."""

    slurm: Path
    local: Path
    output: str
    seconds: float


@pytest.fixture(scope="module")
def runs(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, snakemake_tools) -> Runs:
    slurm = snakemake_tools.copy(tmp_path_factory.mktemp("slurm-run"))
    local = snakemake_tools.copy(tmp_path_factory.mktemp("local-run"))
    # The local run: one job per study (n_workers 1), what the SLURM run is compared on.
    single = {**SMALL_DAG, "hpo": {**SMALL_DAG["hpo"], "n_workers": 1}}
    targets = [
        *(f"results/splits/{c}.csv" for c in CORPORA),
        "results/hpo/random/best.yaml",
    ]
    local_run = subprocess.Popen(
        [*snakemake_tools.command, "--cores", "1", *targets, *_configs(local, single)],
        cwd=local, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    start = time.time()
    try:
        result = subprocess.run(
            [*snakemake_tools.command, "--profile", "profiles/slurm",
             # Quicker polling than a real cluster needs; outputs appear at once here.
             "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "10",
             *_configs(slurm, SMALL_DAG)],
            cwd=slurm, env=_environment(), capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        seconds = time.time() - start
        local_output, _ = local_run.communicate(timeout=900)
    finally:
        if local_run.poll() is None:
            local_run.kill()
            local_run.wait()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert local_run.returncode == 0, local_output[-4000:]
    print(f"the SLURM run took {seconds:.0f} s")
    return Runs(slurm=slurm, local=local, output=output, seconds=seconds)


def submitted(output: str) -> list[tuple[str, str]]:
    """(rule, SLURM job id) of every job the executor submitted."""
    pattern = r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/"
    return [(rule, job) for job, rule in re.findall(pattern, output)]


def test_every_job_of_the_dag_ran_as_a_slurm_job(runs: Runs) -> None:
    jobs = submitted(runs.output)
    rules = {rule for rule, _ in jobs}
    assert rules == {
        "synthesize_corpus", "prepare_corpus", "split_corpus", "build_tiny_backbone",
        "cache_features", "hpo_worker", "hpo", "retrain_final", "evaluate",
        "evaluate_pretrained", "report",
    }  # fmt: skip
    assert len({job for _, job in jobs}) == len(jobs)
    assert len(jobs) == int(re.search(r"^total\s+(\d+)", runs.output, re.MULTILINE)[1]) - 1
    print(f"{len(jobs)} SLURM jobs in {runs.seconds:.0f} s")
    results = runs.slurm / "results"
    assert (results / "tables/table5_efficiency.csv").is_file()
    for engine in ENGINES:
        assert (results / f"final/{engine}/model/model.pt").is_file()
        for corpus in CORPORA:
            assert (results / f"eval/{engine}/{corpus}.json").is_file()


def test_each_slurm_job_got_its_rules_threads_and_memory(runs: Runs, cluster: Cluster) -> None:
    expected = {  # rule: (threads, mem_mb), as the rules declare them
        "prepare_corpus": (2, 4000),
        "split_corpus": (1, 1000),
        "cache_features": (2, 8000),
        "hpo_worker": (1, 8000),
        "hpo": (1, 8000),
        "retrain_final": (2, 8000),
        "evaluate": (2, 6000),
        "evaluate_pretrained": (2, 6000),
    }
    for rule, job in submitted(runs.output):
        if rule not in expected:
            continue
        fields = cluster.job(job)
        threads, mem_mb = expected[rule]
        assert (fields["JobState"], int(fields["NumCPUs"])) == ("COMPLETED", threads), fields
        assert fields["MinMemoryNode"] == f"{mem_mb}M", (rule, fields)


def test_hpo_workers_were_separate_slurm_jobs_and_spent_the_budget_exactly(runs: Runs) -> None:
    jobs = {job for rule, job in submitted(runs.output) if rule == "hpo_worker"}
    for engine in ENGINES:
        folder = runs.slurm / f"results/hpo/{engine}"
        summaries = [yaml.safe_load((folder / f"workers/{w}.yaml").read_text()) for w in (0, 1)]
        job_ids = {summary["slurm_job_id"] for summary in summaries}
        assert len(job_ids) == 2 and job_ids <= jobs  # two SLURM jobs, one per worker
        trials = pd.read_csv(folder / "trials.csv")
        assert len(trials) == N_TRIALS  # the budget: nothing lost, nothing run twice
        assert sorted(trials["trial"]) == list(range(N_TRIALS))
        assert trials["engine_trial"].is_unique
        ran = sorted(n for summary in summaries for n in summary["trials"])
        assert ran == list(range(N_TRIALS))  # the worker jobs ran them all, the hpo job none
        assert set(trials["worker"]) <= {0, 1}
        best = yaml.safe_load((folder / "best.yaml").read_text())
        assert best["n_trials"] == N_TRIALS
        assert best["value"] == trials.loc[trials["status"] == "complete", "value"].max()
        print(engine, "trials per worker job:", {s["slurm_job_id"]: s["trials"] for s in summaries})


def test_outputs_match_a_local_run(runs: Runs) -> None:
    for corpus in CORPORA:
        for table in (f"manifests/{corpus}.csv", f"splits/{corpus}.csv"):
            frames = []
            for workdir in (runs.slurm, runs.local):
                frame = pd.read_csv(workdir / "results" / table, keep_default_na=False)
                if "source_path" in frame:  # absolute: under each run's own folder
                    frame["source_path"] = frame["source_path"].str.replace(
                        str(workdir), "", regex=False
                    )
                frames.append(frame)
            pd.testing.assert_frame_equal(*frames)
    # Random search: two worker jobs under SLURM, one local job; the same draws and scores.
    slurm = pd.read_csv(runs.slurm / "results/hpo/random/trials.csv")
    local = pd.read_csv(runs.local / "results/hpo/random/trials.csv")
    columns = [c for c in slurm.columns if c.startswith("param_")] + ["value", "status"]
    slurm = slurm.sort_values("engine_trial", ignore_index=True)  # in the order they were drawn
    local = local.sort_values("engine_trial", ignore_index=True)
    pd.testing.assert_frame_equal(slurm[columns], local[columns])
    best_slurm = yaml.safe_load((runs.slurm / "results/hpo/random/best.yaml").read_text())
    best_local = yaml.safe_load((runs.local / "results/hpo/random/best.yaml").read_text())
    assert (best_slurm["params"], best_slurm["value"]) == (
        best_local["params"],
        best_local["value"],
    )
    summary = json.loads((runs.slurm / "results/manifests/emodb.summary.json").read_text())
    assert summary == json.loads((runs.local / "results/manifests/emodb.summary.json").read_text())
