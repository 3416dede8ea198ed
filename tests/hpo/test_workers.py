"""Workers sharing one study: separate processes (as separate cluster jobs), a killed worker.

The workers here are `serhpo hpo --worker W` processes on the synthetic objective, started and
killed the way a scheduler starts, kills and retries jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

import serhpo
from serhpo.cli import main
from serhpo.errors import UserError
from serhpo.hpo.engine import FinishedTrial, Proposal
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.study import run_study
from serhpo.hpo.synthetic_objective import SyntheticObjective
from serhpo.hpo.trials_log import TrialsLog
from serhpo.hpo.workers import Claim, is_alive, live_claims, worker_slot, write_claim
from serhpo.trial import TrialStatus

SPACE = SearchSpace.from_config(None)
PACKAGE_PARENT = Path(serhpo.__file__).resolve().parents[1]
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)}


def write_config(folder: Path, engine: str, n_trials: int) -> Path:
    config = folder / f"{engine}.yaml"
    hpo = {"n_trials": n_trials, "n_startup_trials": 3, "n_workers": 3, "grid_points": 3}
    config.write_text(yaml.safe_dump({"seed": 5, "hpo": hpo}))
    return config


def worker_command(engine: str, config: Path, out: Path, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "serhpo.cli", "hpo", "--engine", engine, "--config", str(config),
        "--out", str(out), "--objective", "synthetic", "--epoch-seconds", "0.03", *options,
    ]  # fmt: skip


def start_worker(engine: str, config: Path, out: Path, worker: int) -> subprocess.Popen:
    summary = out.parent / f"{out.name}-worker-{worker}.yaml"
    command = worker_command(
        engine, config, out, "--worker", str(worker), "--worker-summary", str(summary)
    )
    return subprocess.Popen(
        command, env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def finish(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors[-3000:]


def logged(out: Path) -> list[FinishedTrial]:
    return TrialsLog(out / "trials.csv", SPACE).read()


def draws(trials: list[FinishedTrial]) -> list[str]:
    return sorted(repr(sorted(t.params.items())) for t in trials)


@pytest.mark.parametrize("engine", ["random", "grid", "optuna"])
def test_a_killed_worker_loses_no_trial_and_duplicates_none(tmp_path: Path, engine: str) -> None:
    budget = 9
    config = write_config(tmp_path, engine, budget)
    out = tmp_path / "shared"
    # Worker 1 starts first and is killed in the middle of its first trial.
    victim = start_worker(engine, config, out, 1)
    claim_file = out / "engine_state/workers/1.claim.yaml"
    wait_for(claim_file, victim)
    interrupted = yaml.safe_load(claim_file.read_text())
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # Workers 0 and 2 run the study concurrently; then worker 1 runs again (a retried job).
    finish([start_worker(engine, config, out, worker) for worker in (0, 2)])
    finish([start_worker(engine, config, out, 1)])
    assert main(worker_command(engine, config, out)[3:]) == 0  # finish: nothing left to run

    trials = logged(out)
    assert len(trials) == budget  # the budget, exactly
    assert [t.trial for t in trials] == list(range(budget))
    assert len({t.engine_trial for t in trials}) == budget  # no trial run twice
    assert {t.worker for t in trials} <= {0, 1, 2}  # who ran what depends on timing
    params = [t.params for t in trials]
    assert params.count(interrupted["params"]) == 1  # the interrupted trial ran again, once
    assert not list((out / "engine_state/workers").glob("*.claim.yaml"))
    summaries = [yaml.safe_load((tmp_path / f"shared-worker-{w}.yaml").read_text()) for w in (0, 2)]
    assert sorted(sum((s["trials"] for s in summaries), [])) == sorted(
        t.trial for t in trials if t.worker in (0, 2)
    )
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["n_trials"] == budget
    assert best["value"] == max(t.value for t in trials if t.status == TrialStatus.COMPLETE)
    if engine in ("random", "grid"):  # the same trials as one process would have run
        single = tmp_path / "single"
        run_study(
            SPACE,
            SyntheticObjective(seed=5),
            HpoSettings.from_config(
                yaml.safe_load(config.read_text()), engine=engine
            ).with_overrides(n_workers=1),
            out_dir=single,
        )
        assert draws(trials) == draws(logged(single))
        assert yaml.safe_load((single / "best.yaml").read_text())["params"] == best["params"]
    else:  # Optuna's journal: every trial finished, the killed one failed and retried
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(out / "engine_state/optuna.journal"))
        )
        study = optuna.load_study(study_name="serhpo", storage=storage)
        states = [t.state for t in study.trials]
        assert optuna.trial.TrialState.RUNNING not in states
        assert states.count(optuna.trial.TrialState.FAIL) == 1
        assert len(study.trials) == budget + 1


def test_workers_started_together_share_the_budget(tmp_path: Path) -> None:
    config = write_config(tmp_path, "random", 12)
    out = tmp_path / "shared"
    finish([start_worker("random", config, out, worker) for worker in range(3)])
    trials = logged(out)
    assert len(trials) == 12 and len({t.engine_trial for t in trials}) == 12
    summaries = [
        yaml.safe_load((tmp_path / f"shared-worker-{w}.yaml").read_text()) for w in range(3)
    ]
    assert sum(len(s["trials"]) for s in summaries) == 12
    assert {s["worker"] for s in summaries} == {0, 1, 2}
    assert all(s["stopped"] == "trial budget of 12 reached" for s in summaries)
    assert len({s["pid"] for s in summaries}) == 3


@pytest.mark.parametrize("engine", ["random", "grid"])
def test_worker_processes_of_one_call_run_the_single_process_trials(
    tmp_path: Path, engine: str
) -> None:
    settings = HpoSettings.from_config({"seed": 2, "hpo": {"n_trials": 8}}, engine=engine)
    run_study(SPACE, SyntheticObjective(seed=2), settings, out_dir=tmp_path / "one")
    parallel = settings.with_overrides(n_workers=2)
    run_study(SPACE, SyntheticObjective(seed=2), parallel, out_dir=tmp_path / "two")
    assert draws(logged(tmp_path / "one")) == draws(logged(tmp_path / "two"))


def test_a_worker_index_runs_once_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "engine_state"
    with worker_slot(state, 3):
        assert is_alive(state, 3)
        twin = pytest.raises(UserError, match="worker 3 .* is running already")
        with twin, worker_slot(state, 3, wait_s=0.3):
            pass
    assert not is_alive(state, 3)


def test_claims_of_dead_workers_are_cleared_and_live_ones_kept(tmp_path: Path) -> None:
    state = tmp_path / "engine_state"
    (state / "workers").mkdir(parents=True)
    for worker in (0, 1, 2):
        write_claim(state, Claim.of(worker, Proposal({"lr": 1e-4}, engine_trial=worker)))
    logged_trial = FinishedTrial(0, {"lr": 1e-4}, 0.5, TrialStatus.COMPLETE, engine_trial=2)
    with worker_slot(state, 1):  # worker 1 is alive; 0 and 2 are not
        live = live_claims(state, [logged_trial], me=0)
    assert [c.worker for c in live] == [1]
    assert sorted(p.name for p in (state / "workers").glob("*.claim.yaml")) == ["1.claim.yaml"]


def test_sequential_engines_refuse_to_run_as_workers(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="hyperopt engine proposes each trial"):
        run_study(
            SPACE,
            SyntheticObjective(),
            HpoSettings.from_config({}, engine="hyperopt"),
            out_dir=tmp_path,
            worker=0,
        )
