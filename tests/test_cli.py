"""The console script exists and answers --help."""

import subprocess
import sys
from pathlib import Path

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


def test_train_compilation_cache_is_on_by_default(monkeypatch, tmp_path):
    from stn_icnn_jax.cli.train import compilation_cache_dir

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache_dir(None, False) == str(tmp_path / "stn-icnn" / "jax")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/somewhere")
    assert compilation_cache_dir(None, False) == "/somewhere"
    assert compilation_cache_dir("~/c", False) == str(Path("~/c").expanduser())
    assert compilation_cache_dir("~/c", True) is None
