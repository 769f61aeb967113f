import json
import shutil
import subprocess
import sys

from click.testing import CliRunner

from morphbias_fast.cli import main


def test_info_lists_the_build():
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    assert "version" in result.output and "cuda" in result.output


def test_console_script_is_installed(tmp_path):
    # Run outside the source tree so that the installed package, not the source folder, is imported.
    script = shutil.which("morphbias-fast")
    assert script, "the morphbias-fast console script is not on PATH"
    for cmd in ([script, "--help"], [sys.executable, "-m", "morphbias_fast", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0 and "bench" in out.stdout, out.stderr


def test_bench_encode_writes_ratios(tmp_path):
    path = tmp_path / "out" / "bench.json"
    result = CliRunner().invoke(main, ["bench", "encode", "--n", "512", "--levels", "4", "--log2-hashmap-size", "12",
                                       "--repeats", "1", "--json", str(path)])
    assert result.exit_code == 0, result.output
    assert "ratio vs ref" in result.output
    data = json.loads(path.read_text())
    for workload in ("forward", "forward+backward", "jacobian"):
        assert data["mqps"][workload]["morphbias"] > 0
        assert data["mqps"][workload]["reference"] > 0
        assert data["ratio_vs_reference"][workload] > 0
    assert not list(path.parent.glob(".bench.json.*"))  # no temporary left behind


def test_bench_encode_refuses_cuda_without_gpu_cleanly():
    import torch

    if torch.cuda.is_available():
        return  # the refusal only applies without a usable GPU
    result = CliRunner().invoke(main, ["bench", "encode", "--device", "cuda", "--n", "16"])
    assert result.exit_code == 2
    assert "needs a GPU" in result.output


def test_bad_option_names_the_option():
    result = CliRunner().invoke(main, ["bench", "encode", "--dims", "4"])
    assert result.exit_code == 2 and "--dims" in result.output


def test_ctrl_c_says_how_to_go_on(monkeypatch):
    from morphbias_fast import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_pipeline", interrupted)
    result = CliRunner().invoke(main, ["run", "--out", "nowhere"])
    assert result.exit_code == 130 and "rerun the same command" in result.output and "--resume" in result.output


def test_top_level_help_does_not_import_torch(tmp_path):
    """`morphbias-fast --help` must answer before torch would have loaded (seconds); not importing it is the
    deterministic form of that (the time itself is in bench/RESULTS.md)."""
    code = ("import sys; from morphbias_fast.launcher import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "synth" in out.stdout and "mitigate" in out.stdout and out.stdout.strip().endswith("torch not loaded")


def test_the_command_list_agrees_with_the_commands():
    from morphbias_fast.launcher import COMMANDS

    assert set(COMMANDS) == set(main.commands)
    for name, text in COMMANDS.items():
        assert " ".join(main.commands[name].help.split()).startswith(text.rstrip(".")), name


def test_errors_through_the_entry_point_are_one_line(tmp_path):
    from morphbias_fast.launcher import main as entry

    result = CliRunner().invoke(entry, ["synth", str(tmp_path / "c"), "--bias-level", "1.5"])
    assert result.exit_code == 1 and "--bias-level" in result.output and "Traceback" not in result.output


def _all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from _all_commands(cmd, (*prefix, name))


def test_every_option_has_help_and_one_vocabulary():
    """Every option explains itself; the shared names mean one thing everywhere (no --register-budget beside
    --time-budget); stage commands take the run folder first and the cohort as --cohort."""
    seen = {}
    for path, cmd in _all_commands(main):
        for p in cmd.params:
            if p.param_type_name == "option" and p.name != "help":
                assert p.help, f"{' '.join(path)} {p.opts[0]} has no help text"
                seen.setdefault(p.opts[0], set()).add(" ".join(path))
    assert "--register-budget" not in seen and "--register-steps" not in seen
    assert {"classify", "register", "discover", "mitigate", "run"} <= seen["--cohort"]
    assert {"register", "run"} <= seen["--time-budget"]
    assert {"classify", "register", "discover", "mitigate", "run"} <= seen["--device"]
    for name in ("classify", "register", "discover", "mitigate", "decode"):
        args = [p.name for p in main.commands[name].params if p.param_type_name == "argument"]
        assert args == ["run_dir"], (name, args)
