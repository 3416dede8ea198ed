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
