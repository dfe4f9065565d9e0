"""Reads the next batches in a background thread while the caller's step runs.

The input pipeline builds each batch on the host (augmentation, resizing, part centres:
about 0.2-0.3 s per batch of 8 on one CPU core for the synthetic main job), and a
training loop that asks for the next batch only after its step has finished pays that
time on top of every step. :class:`ReadAhead` overlaps the two: a thread fetches the
following batches while the jitted step (dispatched asynchronously) computes.

The order of the items is the wrapped iterator's, so training is unchanged. Each item
comes with the iterator's state right after it (:attr:`ReadAhead.position`), because the
iterator itself has already moved on: a mid-epoch checkpoint stores the position of the
last batch the caller consumed, not of the ones read ahead.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Iterator

_END = object()
_POLL_SECONDS = 0.1


class ReadAhead:
    """An iterator over ``iterator``'s items, read up to ``depth + 1`` items ahead.

    Exceptions raised by the wrapped iterator are raised by :meth:`__next__` in the
    caller's thread, at the item where they happened. Use it as a context manager (or
    call :meth:`close`) so that the thread stops when the caller stops early.

    Args:
      iterator: the items (e.g. a grain ``DataLoader`` iterator).
      get_state: called right after each item is read, in the reading thread; its result
        is :attr:`position` once that item has been returned. Default: no state.
      depth: items waiting in the queue (the thread reads one more while it waits).
      niceness: the reading thread's scheduling niceness (Linux; 0 = the caller's).
    """

    def __init__(self, iterator: Iterator, get_state: Callable[[], Any] | None = None,
                 depth: int = 1, niceness: int = 0):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._iterator = iterator
        self._get_state = get_state or (lambda: None)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._niceness = niceness
        #: the iterator's state after the item last returned (None before the first)
        self.position: Any = None
        self._thread = threading.Thread(target=self._read, name="read-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        if self._niceness:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._niceness)
        while not self._stop.is_set():
            try:
                entry = (next(self._iterator), None, self._get_state())
            except StopIteration:
                entry = (_END, None, None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                entry = (None, exc, None)
            while not self._stop.is_set():
                try:
                    self._queue.put(entry, timeout=_POLL_SECONDS)
                    break
                except queue.Full:
                    continue
            if entry[0] is _END or entry[1] is not None:
                return

    def __iter__(self) -> "ReadAhead":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item, error, state = self._queue.get()
        if error is not None:
            self._done = True
            raise error
        if item is _END:
            self._done = True
            raise StopIteration
        self.position = state
        return item

    def close(self) -> None:
        """Stops the thread (it finishes the item it is reading, then exits)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
