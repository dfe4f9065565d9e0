"""Runs of several processes on this machine for the multi-host tests: each process a
subprocess with its own fake CPU devices, all joined through a localhost coordinator."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

PROCESSES = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def environment(devices_per_process: int = 2, **extra: str) -> dict:
    """The environment of a process: ``devices_per_process`` fake CPU devices."""
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}",
                JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)


def kill_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait(timeout=60)


def run_cli(args: list[str], timeout: float, program: tuple[str, ...] = ("-m", "stn_icnn_jax.cli"),
            ) -> list[tuple[int, str, str]]:
    """``stn-icnn ARGS --coordinator ... --num_processes 2 --process_id I`` as
    :data:`PROCESSES` processes (``python PROGRAM ARGS ...``); ``[(exit status, stdout,
    stderr)]`` of each. Fails (``subprocess.TimeoutExpired``) when one has not ended
    after ``timeout`` seconds: a hang."""
    coordinator = f"localhost:{free_port()}"
    procs = [subprocess.Popen(
        [sys.executable, *program, *args, "--coordinator", coordinator,
         "--num_processes", str(PROCESSES), "--process_id", str(i)],
        env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(PROCESSES)]
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        kill_all(procs)
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def error_line(stderr: str) -> str:
    """The one ``error: ...`` line of a process's stderr; the only other lines allowed are
    gloo's notes on connecting the processes (fails on a traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and all(line.startswith(("error: ", "[Gloo]")) for line in lines), \
        stderr
    return errors[0]
