"""Every engine's trials in one Optuna journal, read back by optuna-dashboard over HTTP."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml

from serhpo.cli import main
from serhpo.hpo.dashboard import TRIAL_ATTR, Dashboard, default_journal
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.study import run_study
from serhpo.hpo.synthetic_objective import SyntheticObjective
from serhpo.hpo.trials_log import TrialsLog
from serhpo.trial import EpochReporter, TrialResult, TrialStatus

SPACE = SearchSpace.from_config(None)
ENGINES = ["grid", "random", "optuna"]


def journal_studies(journal: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
        for s in storage.get_all_studies()
    }


@pytest.fixture(scope="module")
def finished_studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three engines' small studies, run by ``serhpo hpo`` as the workflow runs them."""
    root = tmp_path_factory.mktemp("results")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"hpo": {"n_trials": 3, "grid_points": 2}}))
    for engine in ENGINES:
        out = root / "hpo" / engine / "study"
        arguments = ["hpo", "--engine", engine, "--config", str(config), "--out", str(out)]
        assert main([*arguments, "--objective", "synthetic"]) == 0
    return root


def test_the_journal_lies_beside_the_engines_folders() -> None:
    assert default_journal(Path("results/hpo/ax/study"), engine="ax") == (
        Path("results/hpo/dashboard.journal"),
        "ax",
    )
    assert default_journal(Path("results/federated/hpo/grid/study"), engine="grid") == (
        Path("results/federated/hpo/dashboard.journal"),
        "grid",
    )


def test_each_engine_is_a_study_with_the_trials_of_its_trials_csv(finished_studies: Path) -> None:
    studies = journal_studies(finished_studies / "hpo" / "dashboard.journal")
    assert sorted(studies) == sorted(ENGINES)
    for engine in ENGINES:
        logged = TrialsLog(finished_studies / "hpo" / engine / "study" / "trials.csv", SPACE).read()
        recorded = studies[engine]
        assert [t.user_attrs[TRIAL_ATTR] for t in recorded] == [t.trial for t in logged]
        for ours, theirs in zip(logged, recorded, strict=True):
            assert theirs.state == optuna.trial.TrialState.COMPLETE
            assert theirs.value == ours.value and theirs.params == ours.params
            assert list(theirs.intermediate_values.values()) == list(ours.history)


def test_a_resumed_or_restarted_study_is_mirrored_without_duplicates(tmp_path: Path) -> None:
    journal = tmp_path / "dashboard.journal"
    board = Dashboard(journal, study="random", space=SPACE)
    out = tmp_path / "random"
    for n_trials in (2, 4):  # a resumed study with a larger budget
        settings = HpoSettings.from_config({"hpo": {"n_trials": n_trials}}, engine="random")
        run_study(SPACE, SyntheticObjective(), settings, out_dir=out, dashboard=board)
    assert [t.user_attrs[TRIAL_ATTR] for t in journal_studies(journal)["random"]] == [0, 1, 2, 3]
    # trials.csv started afresh elsewhere (another space): the study is rebuilt from it
    narrow = SearchSpace.from_config({"lr": {"type": "loguniform", "low": 1e-6, "high": 1e-3}})
    settings = HpoSettings.from_config({"hpo": {"n_trials": 1}}, engine="random")
    board = Dashboard(journal, study="random", space=narrow)
    run_study(
        narrow, SyntheticObjective(), settings, out_dir=out, dashboard=board, restart_on_change=True
    )
    (only,) = journal_studies(journal)["random"]
    assert list(only.params) == ["lr"]


def test_failed_trials_are_recorded_as_failed(tmp_path: Path) -> None:
    def flaky(params: dict, report: EpochReporter) -> TrialResult:
        if params["lr"] > 1e-4:
            raise RuntimeError("diverged")
        return TrialResult(value=0.5, status=TrialStatus.COMPLETE, history=[0.4, 0.5])

    space = SearchSpace.from_config({"lr": {"type": "choice", "choices": [1e-5, 1e-3]}})
    board = Dashboard(tmp_path / "d.journal", study="grid", space=space)
    run_study(
        space,
        flaky,
        HpoSettings.from_config({}, engine="grid"),
        out_dir=tmp_path / "g",
        dashboard=board,
    )
    states = {t.params["lr"]: t for t in journal_studies(tmp_path / "d.journal")["grid"]}
    assert states[1e-3].state == optuna.trial.TrialState.FAIL and states[1e-3].value is None
    assert "diverged" in states[1e-3].user_attrs["reason"]
    assert states[1e-5].value == 0.5


def test_a_journal_that_cannot_be_written_never_stops_the_study(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    board = Dashboard(blocker / "d.journal", study="random", space=SPACE)
    settings = HpoSettings.from_config({"hpo": {"n_trials": 2}}, engine="random")
    outcome = run_study(
        SPACE, SyntheticObjective(), settings, out_dir=tmp_path / "r", dashboard=board
    )
    assert len(outcome.trials) == 2 and "optuna-dashboard journal" in caplog.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_optuna_dashboard_serves_every_engines_study(finished_studies: Path) -> None:
    journal = finished_studies / "hpo" / "dashboard.journal"
    port = free_port()
    command = Path(sys.executable).with_name("optuna-dashboard")  # as the README says
    server = subprocess.Popen(
        [str(command), str(journal), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/api/studies"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                summaries = get(base)["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "optuna-dashboard did not answer in 30 s"
                time.sleep(0.2)
        assert sorted(s["study_name"] for s in summaries) == sorted(ENGINES)
        assert all(s["directions"] == ["maximize"] for s in summaries)
        for summary in summaries:
            detail = get(f"{base}/{summary['study_id']}")
            logged = TrialsLog(
                finished_studies / "hpo" / summary["study_name"] / "study" / "trials.csv", SPACE
            ).read()
            values = [t["values"][0] for t in detail["trials"]]
            assert len(values) == len(logged)
            assert all(math.isclose(a, t.value) for a, t in zip(values, logged, strict=True))
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_worker_processes_share_the_journal_without_losing_a_trial(tmp_path: Path) -> None:
    journal = tmp_path / "dashboard.journal"
    board = Dashboard(journal, study="random", space=SPACE)
    settings = HpoSettings.from_config({"hpo": {"n_trials": 6, "n_workers": 2}}, engine="random")
    slow = SyntheticObjective(epoch_seconds=0.02)  # both workers get trials
    run_study(SPACE, slow, settings, out_dir=tmp_path / "random", dashboard=board)
    logged = TrialsLog(tmp_path / "random" / "trials.csv", SPACE).read()
    recorded = journal_studies(journal)["random"]
    assert sorted(t.user_attrs[TRIAL_ATTR] for t in recorded) == list(range(6))
    assert {t.user_attrs["worker"] for t in recorded} == {t.worker for t in logged} == {0, 1}
    assert sorted(t.value for t in recorded) == sorted(t.value for t in logged)
