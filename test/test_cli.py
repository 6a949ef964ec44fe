"""The `sc-mllm` entry point."""

import subprocess
import sys

from sc_mllm_ros.cli import COMMANDS, main


def test_every_command_has_a_module_with_the_command_protocol() -> None:
    import importlib

    for name, (module, _) in COMMANDS.items():
        mod = importlib.import_module(f"sc_mllm_ros.commands.{module}")
        assert callable(mod.add_arguments) and callable(mod.run), name


def test_doctor_reports_every_part_with_a_verdict(capsys) -> None:
    from sc_mllm_ros.commands.doctor import CHECKS

    rc = main(["doctor"])
    lines = capsys.readouterr().out.splitlines()
    for check in CHECKS:
        line = next((ln for ln in lines if f"  {check.name}  " in ln), None)
        assert line is not None, f"no verdict for {check.name}"
        assert line.split()[0] in {"ok", "FAIL", "absent"}
    # Exit status follows the required verdicts.
    failed_required = [ln for ln in lines if ln.split()[0] == "FAIL"]
    assert rc == (1 if failed_required else 0)


def test_unknown_command_is_a_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "sc_mllm_ros.cli", "fly"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
