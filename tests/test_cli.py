"""The console script exists and answers --help."""

import subprocess
import sys

from stn_icnn_jax import cli


def test_help_lists_program(capsys):
    try:
        cli.main(["--help"])
    except SystemExit as exc:  # argparse exits 0 after printing help
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "stn-icnn" in out and "STN-iCNN" in out


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "stn_icnn_jax.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "usage: stn-icnn" in result.stdout
