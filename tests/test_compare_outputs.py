"""benchmarks/compare_outputs.py: two results folders differ only where a decision or score does."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_outputs.py"
spec = importlib.util.spec_from_file_location("compare_outputs", SCRIPT)
compare_outputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_outputs)

HEADER = "trial,param_lr,value,trial_seconds,cumulative_seconds,status,reason,history,extra\n"


def _results(folder: Path, *, value: str = "0.5", seconds: str = "1.2", bca: float = 0.7) -> Path:
    study = folder / "hpo" / "optuna"
    study.mkdir(parents=True)
    extra = json.dumps({"seconds_train": float(seconds), "epochs_run": 3}).replace('"', '""')
    (study / "trials.csv").write_text(
        HEADER + f'0,0.001,{value},{seconds},{seconds},complete,,0.4;{value},"{extra}"\n'
    )
    best = {"engine": "optuna", "trial": 0, "value": float(value), "cumulative_seconds": 9.0}
    (study / "best.yaml").write_text(yaml.safe_dump(best))
    scores = folder / "eval" / "optuna"
    scores.mkdir(parents=True)
    features = {"cache_dir": str(folder / "features"), "read": 3, "computed": 0}
    (scores / "emodb.json").write_text(json.dumps({"bca": bca, "features": features}))
    return folder


def test_timings_paths_and_cache_counts_are_no_difference(tmp_path: Path, capsys) -> None:
    first = _results(tmp_path / "a")
    second = _results(tmp_path / "b", seconds="7.5")
    assert compare_outputs.main([str(first), str(second)]) == 0
    assert "compared 3 files: no difference" in capsys.readouterr().out


def test_a_different_score_or_a_missing_file_is_named(tmp_path: Path, capsys) -> None:
    first = _results(tmp_path / "a")
    second = _results(tmp_path / "b", value="0.6", bca=0.71)
    assert compare_outputs.main([str(first), str(second)]) == 1
    out = capsys.readouterr().out
    assert "hpo/optuna/trials.csv: row 0: value: '0.5' != '0.6'" in out
    assert "hpo/optuna/best.yaml: value: 0.5 != 0.6" in out
    assert "eval/optuna/emodb.json: bca: 0.7 != 0.71" in out
    assert compare_outputs.main([str(first), str(second), "--tolerance", "0.2"]) == 0
    shutil.rmtree(second / "eval")
    assert compare_outputs.main([str(first), str(second), "--tolerance", "0.2"]) == 1
    assert "eval/optuna/emodb.json: only in" in capsys.readouterr().out
    assert compare_outputs.main([str(first), str(tmp_path / "none")]) == 2
