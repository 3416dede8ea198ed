import pytest

from serhpo.cli import STAGES, main


def test_a_stage_help_lists_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["split", "--help"])
    assert exited.value.code == 0
    assert "--valid-fraction" in capsys.readouterr().out


def test_user_errors_exit_2_with_the_message(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "prepare",
            "--corpus",
            "emodb",
            "--raw",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "o"),
            "--manifest",
            str(tmp_path / "m.csv"),
            "--rejects",
            str(tmp_path / "r.csv"),
            "--summary",
            str(tmp_path / "s.json"),
        ]
    )
    assert status == 2
    assert "corpora.emodb.source" in capsys.readouterr().err


def test_unknown_stage_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["trian"])
    assert exited.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


def test_every_stage_module_provides_the_cli_contract() -> None:
    import importlib

    for name, (module_name, _) in STAGES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            pytest.fail(f"stage {name}: module {module_name} does not exist")
        assert callable(module.add_arguments) and callable(module.run), name


def test_stages_that_score_no_audio_import_no_deep_learning_library() -> None:
    """Each job is a new process: torch & co. cost seconds of start-up where nothing uses them."""
    import subprocess
    import sys

    light = ["check-config", "download", "synthesize", "export-table", "prepare", "split", "hpo",
             "cv-pool", "fl-evaluate", "fl-report", "report"]  # fmt: skip
    heavy = ["torch", "speechbrain", "transformers", "ray", "flwr", "ax", "ctranslate2"]
    code = (
        "import importlib, sys\n"
        "from serhpo.cli import STAGES\n"
        f"for stage in {light!r}: importlib.import_module(STAGES[stage][0])\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
