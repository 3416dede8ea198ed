import argparse
import importlib

import pytest

from serhpo.cli import STAGES, HelpFormatter, _stage_parsers, build_parser, main


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
    for name, (module_name, _) in STAGES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            pytest.fail(f"stage {name}: module {module_name} does not exist")
        assert callable(module.add_arguments) and callable(module.run), name


def _stage_parsers_with_options() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    stages = _stage_parsers(parser)
    for name, (module_name, _) in STAGES.items():
        importlib.import_module(module_name).add_arguments(stages[name])
    return stages


def test_every_option_of_every_stage_has_help_and_shows_its_default() -> None:
    missing, no_default = [], []
    for name, stage in _stage_parsers_with_options().items():
        stage.format_help()  # renders every help string (a stray % would raise here)
        for action in stage._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = f"serhpo {name} {'/'.join(action.option_strings) or action.dest}"
            if not (action.help or "").strip():
                missing.append(label)
                continue
            shown = HelpFormatter(name)._get_help_string(action) or ""
            meaningful = action.default not in (None, False, [], argparse.SUPPRESS)
            optional = action.option_strings and not action.required
            if optional and meaningful and "default" not in shown:
                no_default.append(label)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help hides their default: {no_default}"


def test_a_default_is_shown_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--threads THREADS files decoded and resampled at once (default: 1)" in out
    assert "--manifest MANIFEST CSV to write" in out
    with pytest.raises(SystemExit):
        main(["cache-features", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "parts of the split to cache (default: train valid)" in out


def test_top_level_help_is_plain_text_ending_with_examples_and_the_readme(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out
    assert out.splitlines()[2].startswith("serhpo: speech emotion recognition")
    examples = out[out.index("examples:") :]
    commands = [line.strip() for line in examples.splitlines() if line.startswith("  serhpo ")]
    assert len(commands) == 2, examples
    assert "README.md" in out.strip().split("\n\n")[-1]  # the last paragraph points to it


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
