from __future__ import annotations

import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

import serhpo
from serhpo.cli import main
from serhpo.errors import UserError
from serhpo.hpo.settings import HpoSettings
from serhpo.hpo.space import SearchSpace
from serhpo.hpo.study import run_study
from serhpo.hpo.synthetic_objective import SyntheticObjective, is_collapsed
from serhpo.hpo.trials_log import TrialsLog
from serhpo.trial import EpochReporter, TrialResult, TrialStatus

SPACE = SearchSpace.from_config(None)
LR_AXIS = SearchSpace.from_config({"lr": {"type": "loguniform", "low": 1e-6, "high": 1e-3}})
PACKAGE_PARENT = Path(serhpo.__file__).resolve().parents[1]


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def params_of(out: Path) -> list[dict[str, Any]]:
    return [t.params for t in TrialsLog(out / "trials.csv", SPACE).read()]


class InterruptAt:
    """The synthetic objective, except that call number ``at`` (0-based) is interrupted."""

    def __init__(self, at: int) -> None:
        self.at, self.calls, self.interrupted_params = at, 0, None
        self.objective = SyntheticObjective()

    def __call__(self, params: dict, report: EpochReporter) -> TrialResult:
        self.calls += 1
        if self.calls - 1 == self.at:
            self.interrupted_params = params
            raise KeyboardInterrupt
        return self.objective(params, report)


class Rendezvous:
    """Each worker's first trial waits until every worker has started one (picklable)."""

    def __init__(self, folder: Path, workers: int) -> None:
        self.folder, self.workers, self.waited = folder, workers, False
        self.objective = SyntheticObjective(epoch_seconds=0.002)

    def __call__(self, params: dict, report: EpochReporter) -> TrialResult:
        if not self.waited:
            self.waited = True
            (self.folder / f"worker-{os.getpid()}").touch()
            deadline = time.time() + 60
            while len(list(self.folder.glob("worker-*"))) < self.workers and time.time() < deadline:
                time.sleep(0.02)
        return self.objective(params, report)


def test_trials_csv_holds_one_row_per_trial_with_the_specified_columns(tmp_path: Path) -> None:
    outcome = run_study(
        SPACE,
        SyntheticObjective(),
        HpoSettings.from_config({"hpo": {"n_trials": 6}}, engine="random"),
        out_dir=tmp_path,
    )
    table = rows(tmp_path)
    assert list(table[0])[:11] == [
        "trial",
        "param_lr",
        "param_epochs",
        "param_unfreeze",
        "param_maxlen",
        "value",
        "trial_seconds",
        "cumulative_seconds",
        "status",
        "reason",
        "history",
    ]
    assert [int(r["trial"]) for r in table] == list(range(6))
    cumulative = [float(r["cumulative_seconds"]) for r in table]
    assert cumulative == sorted(cumulative)
    for row in table:
        assert row["status"] == "complete"
        history = [float(x) for x in row["history"].split(";")]
        assert len(history) == int(row["param_epochs"])
        assert float(row["value"]) == pytest.approx(history[-1], abs=1e-6)
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best == outcome.best
    assert best["value"] == max(float(r["value"]) for r in table)
    assert (best["engine"], best["metric"]) == ("random", "valid_bca")
    assert table[best["trial"]]["param_lr"] == repr(best["params"]["lr"])


def test_failures_are_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    synthetic = SyntheticObjective()
    calls = []

    def flaky(params: dict, report: EpochReporter) -> TrialResult:
        calls.append(params)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        if len(calls) == 2:
            report(1, math.nan)
            return TrialResult(value=math.nan, history=[math.nan])
        if len(calls) == 3:
            return TrialResult(value=0.2, status=TrialStatus.FAILED, reason="loss diverged")
        return synthetic(params, report)

    run_study(
        SPACE,
        flaky,
        HpoSettings.from_config({"hpo": {"n_trials": 5}}, engine="random"),
        out_dir=tmp_path,
    )
    table = rows(tmp_path)
    assert [r["status"] for r in table] == ["failed", "failed", "failed", "complete", "complete"]
    assert table[0]["reason"] == "RuntimeError: CUDA out of memory"
    assert "non-finite" in table[1]["reason"] and table[1]["value"] == ""
    assert table[2]["reason"] == "loss diverged" and table[2]["value"] == ""


def test_a_trial_that_ignores_a_stop_request_counts_as_complete(tmp_path: Path) -> None:
    def stubborn(params: dict, report: EpochReporter) -> TrialResult:
        history = [1 / 7] * 3
        for epoch, score in enumerate(history, start=1):
            report(epoch, score)  # asked to stop after epoch 1; goes on
        return TrialResult(value=history[-1], history=history)

    settings = HpoSettings.from_config(
        {"hpo": {"n_trials": 1, "pruning": {"enabled": True}}}, engine="grid"
    )
    run_study(SPACE, stubborn, settings, out_dir=tmp_path)
    (row,) = rows(tmp_path)
    assert row["status"] == "complete" and len(row["history"].split(";")) == 3


def test_a_user_error_in_the_objective_stops_the_study(tmp_path: Path) -> None:
    def misconfigured(params: dict, report: EpochReporter) -> TrialResult:
        raise UserError("config key training.batch_size: found 0; expected >= 1")

    with pytest.raises(UserError, match="batch_size"):
        run_study(
            SPACE,
            misconfigured,
            HpoSettings.from_config({"hpo": {"n_trials": 3}}, engine="grid"),
            out_dir=tmp_path,
        )
    assert not (tmp_path / "trials.csv").exists()


def test_a_study_where_every_trial_fails_says_so(tmp_path: Path) -> None:
    def broken(params: dict, report: EpochReporter) -> TrialResult:
        raise ValueError("no data")

    with pytest.raises(UserError, match="ValueError: no data"):
        run_study(
            SPACE,
            broken,
            HpoSettings.from_config({"hpo": {"n_trials": 2}}, engine="grid"),
            out_dir=tmp_path,
        )
    assert len(rows(tmp_path)) == 2


@pytest.mark.parametrize("engine", ["grid", "random", "hyperopt", "optuna", "ax"])
def test_an_interrupted_study_resumes_without_losing_a_trial(tmp_path: Path, engine: str) -> None:
    settings = HpoSettings.from_config(
        {"seed": 3, "hpo": {"n_trials": 6, "n_sobol": 6, "n_startup_trials": 2}}, engine=engine
    )
    interrupted = InterruptAt(3)
    with pytest.raises(KeyboardInterrupt):
        run_study(SPACE, interrupted, settings, out_dir=tmp_path / "study")
    before = rows(tmp_path / "study")
    assert len(before) == 3

    run_study(SPACE, SyntheticObjective(), settings, out_dir=tmp_path / "study")
    after = rows(tmp_path / "study")
    assert len(after) == settings.n_trials  # the budget, exactly
    assert after[:3] == before  # nothing lost, nothing renumbered
    assert [int(r["trial"]) for r in after] == list(range(6))
    assert float(after[3]["cumulative_seconds"]) >= float(before[-1]["cumulative_seconds"])
    if engine != "ax":  # the others retry the interrupted parameters first
        assert params_of(tmp_path / "study")[3] == interrupted.interrupted_params
    if engine in ("grid", "random", "hyperopt"):  # and then carry on as if never stopped
        run_study(SPACE, SyntheticObjective(), settings, out_dir=tmp_path / "straight")
        assert params_of(tmp_path / "study") == params_of(tmp_path / "straight")


def test_a_killed_study_process_resumes_from_its_files(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"seed": 0, "hpo": {"n_trials": 8, "n_startup_trials": 3}}))
    out = tmp_path / "optuna"
    command = [
        sys.executable, "-m", "serhpo.cli", "hpo", "--engine", "optuna", "--config", str(config),
        "--out", str(out), "--objective", "synthetic", "--epoch-seconds", "0.05",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)}
    process = subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and process.poll() is None:
            if (out / "trials.csv").exists() and len(rows(out)) >= 2:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    before = rows(out)
    assert 2 <= len(before) < 8

    assert main(command[3:]) == 0
    after = rows(out)
    assert len(after) == 8 and after[: len(before)] == before
    assert [int(r["trial"]) for r in after] == list(range(8))
    numbers = [int(r["engine_trial"]) for r in after]
    assert len(set(numbers)) == 8  # Optuna's own numbers: no trial told twice


class FakeClock:
    """The study's clock, advanced only by the objective's epochs: no wall-clock in the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class EpochsOnTheClock:
    """A trial of ``epochs`` epochs of ``epoch_seconds`` each on the fake clock."""

    def __init__(self, clock: FakeClock, *, epochs: int = 10, epoch_seconds: float = 0.02):
        self.clock, self.epochs, self.epoch_seconds = clock, epochs, epoch_seconds

    def __call__(self, params: dict, report: EpochReporter) -> TrialResult:
        history = []
        for epoch in range(1, self.epochs + 1):
            self.clock.now += self.epoch_seconds
            history.append(0.5)
            if report(epoch, 0.5):
                return TrialResult(0.5, TrialStatus.PRUNED, "stopped", history)
        return TrialResult(0.5, history=history)


def test_the_time_budget_stops_the_study_and_the_running_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from serhpo.hpo import study, workers

    clock = FakeClock()
    fake_time = types.SimpleNamespace(
        time=clock, perf_counter=clock, monotonic=time.monotonic, sleep=time.sleep,
        strftime=time.strftime,
    )  # fmt: skip
    monkeypatch.setattr(study, "time", fake_time)
    monkeypatch.setattr(workers, "time", fake_time)
    settings = HpoSettings.from_config(
        {"hpo": {"n_trials": None, "time_budget_min": 0.5 / 60}}, engine="random"
    )
    run_study(SPACE, EpochsOnTheClock(clock), settings, out_dir=tmp_path)
    trials = TrialsLog(tmp_path / "trials.csv", SPACE).read()
    # 10 epochs of 0.02 s: two whole trials (0.4 s), the third stopped by the budget at 0.5 s.
    assert [t.status for t in trials] == [TrialStatus.COMPLETE] * 2 + [TrialStatus.PRUNED]
    assert [len(t.history) for t in trials] == [10, 10, 5]
    assert "time budget" in trials[-1].reason
    assert [round(t.cumulative_seconds, 6) for t in trials] == [0.2, 0.4, 0.5]


@pytest.mark.parametrize("engine", ["random", "optuna"])
def test_pruning_cuts_the_epochs_a_study_runs(tmp_path: Path, engine: str) -> None:
    # A region of Table 2 where collapsed trials are common, as in the paper.
    space = SearchSpace.from_config(
        {
            "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-3},
            "epochs": {"type": "int", "low": 6, "high": 10},
            "unfreeze": {"type": "int", "low": 0, "high": 5},
        }
    )
    plain = HpoSettings.from_config(
        {"seed": 1, "hpo": {"n_trials": 16, "n_startup_trials": 16}}, engine=engine
    )
    pruned = plain.with_overrides(
        pruning=replace(plain.pruning, enabled=True, min_epochs=1, min_trials=3)
    )
    run_study(space, SyntheticObjective(), plain, out_dir=tmp_path / "plain")
    run_study(space, SyntheticObjective(), pruned, out_dir=tmp_path / "pruned")
    plain_trials = TrialsLog(tmp_path / "plain" / "trials.csv", space).read()
    pruned_trials = TrialsLog(tmp_path / "pruned" / "trials.csv", space).read()
    assert [t.params for t in plain_trials] == [t.params for t in pruned_trials]  # same proposals
    epochs_pruned = sum(len(t.history) for t in pruned_trials)
    assert epochs_pruned < 0.7 * sum(len(t.history) for t in plain_trials)
    collapsed = [t for t in pruned_trials if is_collapsed(t.params)]
    assert collapsed, "the space should produce collapsed trials"
    for trial in collapsed:  # the paper's 1/7 trials cost one epoch, not ten
        assert trial.status == TrialStatus.PRUNED and len(trial.history) == 1
        assert trial.value == pytest.approx(1 / 7) and "chance level" in trial.reason
    reasons = " ".join(t.reason for t in pruned_trials)
    assert ("median pruner" if engine == "optuna" else "below the median") in reasons
    assert all(t.status == TrialStatus.COMPLETE for t in plain_trials)


def test_two_workers_share_one_optuna_study(tmp_path: Path) -> None:
    settings = HpoSettings.from_config(
        {"hpo": {"n_trials": 10, "n_workers": 2, "n_startup_trials": 4}}, engine="optuna"
    )
    (tmp_path / "rendezvous").mkdir()
    run_study(SPACE, Rendezvous(tmp_path / "rendezvous", 2), settings, out_dir=tmp_path / "study")
    trials = TrialsLog(tmp_path / "study" / "trials.csv", SPACE).read()
    assert len(trials) == 10  # the union of both workers' trials is the budget
    assert sorted(t.trial for t in trials) == list(range(10))
    assert len({t.engine_trial for t in trials}) == 10  # no duplicate trial numbers
    assert {t.worker for t in trials} == {0, 1}
    import optuna

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(
            str(tmp_path / "study/engine_state/optuna.journal")
        )
    )
    study = optuna.load_study(study_name="serhpo", storage=storage)
    assert len(study.trials) == 10 and all(t.state.is_finished() for t in study.trials)


@pytest.mark.parametrize("engine", ["grid", "random", "hyperopt", "optuna", "ax"])
def test_the_same_seed_reproduces_the_same_trials(tmp_path: Path, engine: str) -> None:
    # Ax: 3 initial trials and one from its Gaussian process, on one axis to keep it cheap.
    space = LR_AXIS if engine == "ax" else SPACE
    settings = HpoSettings.from_config(
        {"seed": 11, "hpo": {"n_trials": 4, "n_sobol": 3, "n_startup_trials": 2}}, engine=engine
    )
    for name in ("a", "b"):
        run_study(space, SyntheticObjective(seed=11), settings, out_dir=tmp_path / name)
    first = TrialsLog(tmp_path / "a" / "trials.csv", space).read()
    assert [t.params for t in first] == [
        t.params for t in TrialsLog(tmp_path / "b" / "trials.csv", space).read()
    ]
    if engine != "grid":
        other = settings.with_overrides(seed=12, n_trials=3)
        run_study(space, SyntheticObjective(seed=11), other, out_dir=tmp_path / "c")
        assert [t.params for t in first][:3] != [
            t.params for t in TrialsLog(tmp_path / "c" / "trials.csv", space).read()
        ]


def mean_best(
    engine: str,
    *,
    n_trials: int,
    seeds: range,
    out: Path,
    space: SearchSpace = SPACE,
    **options: Any,
) -> float:
    bests = []
    for seed in seeds:
        settings = HpoSettings.from_config(
            {"seed": seed, "hpo": {"n_trials": n_trials, **options}}, engine=engine
        )
        objective = SyntheticObjective(seed=seed)
        outcome = run_study(space, objective, settings, out_dir=out / f"{engine}{seed}")
        bests.append(outcome.best["value"])
    return statistics.mean(bests)


@pytest.mark.parametrize("engine", ["hyperopt", "optuna"])
def test_tpe_engines_beat_random_search_at_equal_budget(tmp_path: Path, engine: str) -> None:
    seeds = range(8)
    random_best = mean_best("random", n_trials=20, seeds=seeds, out=tmp_path)
    model_best = mean_best(engine, n_trials=20, seeds=seeds, out=tmp_path, n_startup_trials=5)
    assert model_best > random_best + 0.05


def test_ax_beats_random_search_at_equal_budget(tmp_path: Path) -> None:
    # Each Gaussian-process proposal costs seconds on two CPU cores (more with the discrete
    # Table 2 parameters), so Ax searches the learning-rate axis, the others held at the
    # synthetic optimum: 2 seeds x (3 initial + 3 GP trials). Random search gets the same
    # budget, averaged over more seeds for a stable baseline.
    random_best = mean_best("random", n_trials=6, seeds=range(30), out=tmp_path, space=LR_AXIS)
    start = time.perf_counter()
    ax_best = mean_best("ax", n_trials=6, seeds=range(2), out=tmp_path, space=LR_AXIS, n_sobol=3)
    print(f"Ax: 2 studies of 6 trials in {time.perf_counter() - start:.1f} s")
    assert ax_best > random_best + 0.1


def test_a_folder_holds_one_engine_and_one_space(tmp_path: Path) -> None:
    run_study(
        SPACE,
        SyntheticObjective(),
        HpoSettings.from_config({"hpo": {"n_trials": 1}}, engine="random"),
        out_dir=tmp_path,
    )
    with pytest.raises(UserError, match="started with engine = 'random'"):
        run_study(
            SPACE,
            SyntheticObjective(),
            HpoSettings.from_config({"hpo": {"n_trials": 1}}, engine="grid"),
            out_dir=tmp_path,
        )
    other = SearchSpace.from_config({"lr": {"type": "loguniform", "low": 1e-6, "high": 1e-2}})
    with pytest.raises(UserError, match="search_space"):
        run_study(
            other,
            SyntheticObjective(),
            HpoSettings.from_config({"hpo": {"n_trials": 1}}, engine="random"),
            out_dir=tmp_path,
        )


def test_the_cli_runs_a_study_with_merged_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"seed": 2, "hpo": {"n_trials": 50, "grid_points": 3}}))
    override = tmp_path / "override.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "hpo": {"n_trials": 4},
                "search_space": {"lr": {"type": "loguniform", "low": 1e-6, "high": 1e-3}},
            }
        )
    )
    out = tmp_path / "grid"
    arguments = ["hpo", "--engine", "grid", "--config", str(base), "--config", str(override)]
    assert main([*arguments, "--out", str(out), "--objective", "synthetic"]) == 0
    assert len(rows(out)) == 3  # n_trials 4 from the override; the 1-parameter grid has 3 points
    assert list(rows(out)[0])[1] == "param_lr"  # the override's space replaced Table 2
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert f"value: {best['value']}" in capsys.readouterr().out


def test_the_cli_hands_the_trainer_its_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    received: dict[str, Any] = {}

    def trainer_objective(config: dict, **options: Any) -> SyntheticObjective:
        received.update(config=config, **options)
        return SyntheticObjective()

    trainer = types.ModuleType("serhpo.objective")
    trainer.trainer_objective = trainer_objective  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "serhpo.objective", trainer)
    config = tmp_path / "config.yaml"
    config.write_text("seed: 4\n")
    split = tmp_path / "split.csv"
    split.write_text("utterance_id\n")
    arguments = ["hpo", "--engine", "random", "--config", str(config), "--out", str(tmp_path / "o")]
    options = ["--split", str(split), "--cache-dir", str(tmp_path / "cache"), "--n-trials", "2"]
    assert main([*arguments, *options]) == 0
    assert received["split_csv"] == split and received["cache_dir"] == tmp_path / "cache"
    assert received["config"]["seed"] == 4 and "backbone_dir" not in received
    assert len(rows(tmp_path / "o")) == 2


def test_the_cli_explains_a_missing_trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import types

    monkeypatch.setitem(sys.modules, "serhpo.objective", types.ModuleType("serhpo.objective"))
    config = tmp_path / "config.yaml"
    config.write_text("seed: 0\n")
    split = tmp_path / "split.csv"
    split.write_text("utterance_id\n")
    arguments = ["hpo", "--engine", "optuna", "--config", str(config), "--out", str(tmp_path / "o")]
    assert main([*arguments, "--split", str(split)]) == 2
    message = capsys.readouterr().err
    assert "serhpo.objective.trainer_objective" in message and "--objective synthetic" in message
    assert main(arguments) == 2
    assert "--split" in capsys.readouterr().err


def test_a_study_resumes_only_with_the_same_trial_inputs(tmp_path: Path) -> None:
    out = tmp_path / "study"
    settings = HpoSettings.from_config({"hpo": {"n_trials": 3}}, engine="random")
    run_study(SPACE, SyntheticObjective(), settings, out_dir=out, trial_inputs={"split": "a"})
    first = params_of(out)
    # A larger budget extends the same study.
    more = HpoSettings.from_config({"hpo": {"n_trials": 5}}, engine="random")
    run_study(SPACE, SyntheticObjective(), more, out_dir=out, trial_inputs={"split": "a"})
    assert params_of(out)[:3] == first and len(params_of(out)) == 5
    # Another split: refused by default, set aside and restarted on request.
    with pytest.raises(UserError, match="trial_inputs"):
        run_study(SPACE, SyntheticObjective(), more, out_dir=out, trial_inputs={"split": "b"})
    run_study(
        SPACE,
        SyntheticObjective(),
        settings,
        out_dir=out,
        trial_inputs={"split": "b"},
        restart_on_change=True,
    )
    assert len(params_of(out)) == 3
    (aside,) = tmp_path.glob("study.replaced-*")
    assert len(params_of(aside)) == 5


# ---- issue 15: a killed and resumed trainer study equals an uninterrupted one ----------------

TRAINER_LABELS = ["anger", "sadness"]


@pytest.fixture(scope="module")
def trainer_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic split (16 train, 8 valid utterances, 2 labels) and a tiny wav2vec2."""

    from serhpo.backbones.tiny import build_tiny_backbone
    from serhpo.corpora.synthetic import synthesize_corpus

    folder = tmp_path_factory.mktemp("trainer")
    build_tiny_backbone(folder / "tiny", seed=0)
    files = synthesize_corpus(
        "emodb", folder / "raw", n_speakers=2, utterances_per_speaker_label=6, seed=0,
        duration_s=(1.0, 1.5),
    )  # fmt: skip
    files = files[files["label"].isin(TRAINER_LABELS)].reset_index(drop=True)
    files["utterance_id"] = [Path(path).stem for path in files["path"]]
    files["corpus"] = "synthetic"
    files["part"] = ["valid" if index % 3 == 0 else "train" for index in range(len(files))]
    files.to_csv(folder / "split.csv", index=False)
    return folder


def _forget_loaded_backbones() -> None:
    """What a new process starts with: no pretrained network loaded yet."""
    from serhpo.backbones import whisper
    from serhpo.models import wav2vec2

    wav2vec2._pretrained.cache_clear()
    whisper._shared_encoder.cache_clear()


def _outcomes(out: Path) -> list[tuple]:
    """Per trial: params, value, status, reason, per-epoch BCA and the last training loss."""
    return [
        (r["param_lr"], r["value"], r["status"], r["reason"], r["history"],
         yaml.safe_load(r["extra"])["train_loss"])
        for r in rows(out)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("backbone", "training", "model"),
    [
        # two stages: the encoder's dropout and layer drop read torch's stream while fine-tuning
        ("tiny_wav2vec2", {"epochs": 3, "unfreeze": 1}, {}),
        ("logmel", {"epochs": 3}, {"arch": "cnn", "n_mels": 32, "channels": 4, "dropout": 0.2}),
    ],
)
def test_a_killed_and_resumed_trainer_study_equals_an_uninterrupted_one(
    tmp_path: Path, trainer_inputs: Path, backbone: str, training: dict, model: dict
) -> None:
    config = {
        "seed": 0,
        "target_labels": TRAINER_LABELS,
        "backbone": {"name": backbone, "dir": str(trainer_inputs / "tiny")},
        "model": model,
        "training": {**training, "maxlen": 16000, "batch_size": 4, "threads": 1,
                     "collapse_after": None},
        "search_space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 3e-2}},
        "hpo": {"n_trials": 8, "pruning": {"enabled": True, "min_trials": 1, "min_epochs": 2}},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    # cache_features ran before the study, as in the workflow
    common = ["--config", str(tmp_path / "config.yaml"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["cache-features", str(trainer_inputs / "split.csv"), *common]) == 0

    def study(out: str) -> list[str]:
        return ["hpo", "--engine", "random", *common, "--out", str(tmp_path / out),
                "--split", str(trainer_inputs / "split.csv")]  # fmt: skip

    # Killed (SIGKILL) after two trials, then resumed in a process of its own.
    environment = {**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "serhpo.cli", *study("resumed")],
        env=environment,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline and process.poll() is None:
            if (tmp_path / "resumed" / "trials.csv").exists() and len(
                rows(tmp_path / "resumed")
            ) >= 2:
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    before = len(rows(tmp_path / "resumed"))
    assert 2 <= before < 8, "the kill should land in the middle of the study"
    _forget_loaded_backbones()
    assert main(study("resumed")) == 0  # its first trial loads the backbone (a new process)

    assert main(study("straight")) == 0  # the backbone is loaded before its first trial
    resumed, straight = _outcomes(tmp_path / "resumed"), _outcomes(tmp_path / "straight")
    assert len(resumed) == len(straight) == 8
    for index, (got, expected) in enumerate(zip(resumed, straight, strict=True)):
        assert got == expected, f"trial {index} (the resume started at trial {before})"

    # `serhpo train` with a completed trial's parameters, in a new process, gives its score.
    lr, value, status, _, history, loss = next(t for t in straight if t[2] == "complete")
    _forget_loaded_backbones()
    output = tmp_path / "train.json"
    train = ["train", str(trainer_inputs / "split.csv"), *common, "--param", f"lr={lr}"]
    assert main([*train, "--output", str(output)]) == 0
    scores = json.loads(output.read_text())
    assert scores["extra"]["train_loss"] == loss
    assert scores["history"] == [float(bca) for bca in history.split(";")]
    assert scores["value"] == float(value) and status == scores["status"] == "complete"
