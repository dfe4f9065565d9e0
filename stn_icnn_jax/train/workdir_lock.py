"""One training run per work directory: ``WORKDIR/train.lock`` names the owner.

The lock file (JSON: host, pid, start time) is created atomically (``O_CREAT|O_EXCL``,
which also holds on NFS v3+ and the usual network file systems); while the run lives a
background thread touches it every :data:`HEARTBEAT_SECONDS`. A second run on the same
work directory is refused with :class:`WorkdirInUseError`, naming the owner's host and
pid. A lock is stale, and is taken over with a message, when

- its pid is not running on this host (the owner was killed or its host rebooted), or
- its heartbeat is older than ``stale_after`` seconds (an owner on another host, whose
  pid cannot be checked from here, that stopped touching it).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
from pathlib import Path

from stn_icnn_jax.errors import UserError

LOCK_NAME = "train.lock"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 600.0


class WorkdirInUseError(UserError):
    """Another live run holds the work directory's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _describe(owner: dict) -> str:
    started = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "?"
    return f"pid {owner.get('pid')} on host {owner.get('host')} (started {when})"


class WorkdirLock:
    """``with WorkdirLock(workdir): ...`` holds ``workdir/train.lock`` for the block.

    Args:
      workdir: the work directory (created if missing).
      stale_after: seconds without a heartbeat after which another host's lock is stale.
      heartbeat: seconds between heartbeats (touches of the lock file).
      say: where the takeover message goes (``print`` to stdout by default).
    """

    def __init__(self, workdir: str | Path, stale_after: float = STALE_AFTER_SECONDS,
                 heartbeat: float = HEARTBEAT_SECONDS, say=None):
        self.path = Path(workdir) / LOCK_NAME
        self.stale_after, self.heartbeat = stale_after, heartbeat
        self.say = say or functools.partial(print, flush=True)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ acquire / release

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = json.dumps({"host": self.host, "pid": self.pid, "started": time.time()})
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(mine)
            self._start_heartbeat()
            return
        raise WorkdirInUseError(f"could not take the lock {self.path}: other runs keep "
                                "taking it; start one run per work directory")

    def _handle_existing(self) -> None:
        """Refuse a live owner; move a stale lock aside (raises or returns to retry)."""
        owner, age = self._read()
        if owner is None:
            return  # vanished (released) or half-written by its creator: retry
        reason = self._stale_reason(owner, age)
        if reason is None:
            raise WorkdirInUseError(
                f"work directory {self.path.parent} is in use by the run of {_describe(owner)} "
                f"(lock file {self.path}, touched {age:.0f} s ago); wait for that run to end, "
                "use another --workdir, or delete the lock file if that run is gone")
        aside = self.path.with_name(f"{LOCK_NAME}.stale.{self.pid}")
        try:
            os.replace(self.path, aside)  # atomic: one contender wins
        except FileNotFoundError:
            return  # another contender took it over first
        taken, _ = self._read(aside)
        if taken != owner:  # we moved a lock that was fresh: put it back, look again
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        self.say(f"taking over the stale lock {self.path} of {_describe(owner)}: {reason}")

    def _read(self, path: Path | None = None) -> tuple[dict | None, float]:
        path = path or self.path
        try:
            text = path.read_text()
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None, 0.0
        try:
            owner = json.loads(text)
        except json.JSONDecodeError:
            # being written right now, or garbage left by a crash: stale once old
            if age > self.stale_after:
                return {"host": "?", "pid": "?", "raw": text[:100]}, age
            return None, age
        return owner, age

    def _stale_reason(self, owner: dict, age: float) -> str | None:
        if owner.get("host") == self.host and isinstance(owner.get("pid"), int):
            if not _pid_alive(owner["pid"]):
                return f"pid {owner['pid']} is not running on this host"
            if owner["pid"] == self.pid:
                return "it is this process's own lock from an earlier run"
        if age > self.stale_after:
            return (f"no heartbeat for {age:.0f} s (a live run touches it every "
                    f"{self.heartbeat:.0f} s)")
        return None

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        owner, _ = self._read()
        if owner and owner.get("host") == self.host and owner.get("pid") == self.pid:
            self.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ heartbeat

    def _start_heartbeat(self) -> None:
        self._stop.clear()

        def beat():
            while not self._stop.wait(self.heartbeat):
                try:
                    os.utime(self.path)
                except OSError:
                    pass  # a network hiccup: the next beat tries again

        self._thread = threading.Thread(target=beat, name="workdir-lock-heartbeat", daemon=True)
        self._thread.start()

    def __enter__(self) -> "WorkdirLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
