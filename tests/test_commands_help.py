"""Every command answers --help and a mistyped option before torch loads, showing defaults."""
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.cfg"


def _commands():
    cfg = configparser.ConfigParser()
    cfg.read(SETUP)
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


PROBE = """
import sys
from {module} import {function} as main
try:
    code = main({argv!r})
except SystemExit as e:
    code = e.code
print("TORCH" if "torch" in sys.modules else "NO-TORCH", code)
"""


@pytest.mark.parametrize("name", sorted(_commands()))
@pytest.mark.parametrize("argv", [["--help"], ["--hepl"]], ids=["help", "typo"])
def test_answers_without_importing_torch(name, argv):
    module, function = _commands()[name].split(":")
    run = subprocess.run([sys.executable, "-c", PROBE.format(module=module, function=function,
                                                            argv=argv)],
                         capture_output=True, text=True, timeout=120)
    last = run.stdout.strip().splitlines()[-1]
    assert last == ("NO-TORCH 0" if argv == ["--help"] else "NO-TORCH 2"), \
        f"{name} {argv}: {last}\n{run.stderr[-2000:]}"
    if argv != ["--help"]:
        assert "did you mean" in run.stderr, run.stderr


def test_a_missing_input_is_said_before_torch_loads(tmp_path):
    probe = PROBE.format(module="training.cli", function="main", argv=[
        "--annotation-path", str(tmp_path / "nowhere.json"), "--result-path", str(tmp_path)])
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.strip().splitlines()[-1] == "NO-TORCH 2", run.stderr
    assert "--annotation-path" in run.stderr and "no such file" in run.stderr


def test_python_m_training_catalog_runs_without_a_warning():
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                          "training.data.catalog", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "RuntimeWarning" not in run.stderr, run.stderr
