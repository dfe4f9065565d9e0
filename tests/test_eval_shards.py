"""Every validation / test record is scored exactly once, whatever the number of
processes: 5 records on 2 processes (shares of 3 and 2) give the same F1, pixel count
and theta loss as 1 process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("eval_shard_worker.py")
TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _evaluate_with(processes: int, logs: Path) -> list[dict]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(WORKER.parent), os.environ.get("PYTHONPATH", "")]))
    env.pop("XLA_FLAGS", None)  # one device per process
    coordinator = f"localhost:{_free_port()}"
    procs = [subprocess.Popen(
        [sys.executable, str(WORKER), "--coordinator", coordinator,
         "--num-processes", str(processes), "--process-id", str(i)],
        env=env, stdout=(logs / f"{processes}_{i}.out").open("w"), stderr=subprocess.STDOUT)
        for i in range(processes)]
    try:
        for p in procs:
            p.wait(timeout=TIMEOUT)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = []
    for i, p in enumerate(procs):
        out = (logs / f"{processes}_{i}.out").read_text()
        assert p.returncode == 0, f"process {i} of {processes} failed:\n{out[-4000:]}"
        line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
        results.append(json.loads(line[len("RESULT "):]))
    return results


@pytest.mark.slow
def test_five_records_on_two_processes_are_each_counted_once(tmp_path):
    one = _evaluate_with(1, tmp_path)[0]
    two = _evaluate_with(2, tmp_path)
    rough_pixels = 5 * 32 * 32  # 5 records at rough size 32
    assert one["rough"]["pixels"] == rough_pixels
    for result in two:  # every process reports the pooled result
        assert result["process_count"] == 2
        assert result["rough"]["pixels"] == rough_pixels
        assert result["rough"]["f1"] == one["rough"]["f1"]
        assert result["localizer"]["theta_loss"] == pytest.approx(
            one["localizer"]["theta_loss"], rel=1e-6)
