"""Transparent huge pages for the buffers XLA allocates on the CPU (Linux with glibc).

XLA's CPU runtime takes its buffers from ``malloc``; glibc serves the large ones with
fresh 4 KiB pages, and every training step touches gigabytes of them anew. The synthetic
main job (46 minutes on 2 cores) took 326 million page faults and spent 839 of its 4,868
CPU seconds in the kernel. glibc 2.35 and later can back its heap and its large chunks
with 2 MiB transparent huge pages (the tunable ``glibc.malloc.hugetlb=1``). With it the
same job took 5.8 million faults, 405 s in the kernel and 40.2 instead of 45.7 minutes,
and train steps alone ran 1.14-1.17x faster (paper preset, batch 8, canvas 640; the two
settings alternated in one run of ``experiments/bench_huge_pages.py``). Results are
unchanged (the main job's test F1 bit for bit): only where the memory comes from differs.
PyTorch's steps, run under the same tunable, were slower (experiments/results/
bench_frameworks_huge_pages.md), so this is a setting for our process, not a global one.

glibc reads tunables once, when a process starts, so they cannot be switched on from
inside Python. The ``stn-icnn`` command therefore re-executes itself once, at its very
start (before JAX is imported), with ``GLIBC_TUNABLES`` extended by the tunable
(:func:`reexec_with_huge_pages`). It does nothing when

- ``STN_ICNN_HUGE_PAGES=0`` is set (opt out),
- ``GLIBC_TUNABLES`` already sets ``glibc.malloc.hugetlb`` (your choice is kept),
- the C library is not glibc >= 2.35 (macOS, Windows, musl) or the kernel's transparent
  huge pages are ``never`` (``/sys/kernel/mm/transparent_hugepage/enabled``).

Library users get the same by starting Python with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` in the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

TUNABLE_NAME = "glibc.malloc.hugetlb"
TUNABLE = f"{TUNABLE_NAME}=1"
OPT_OUT = "STN_ICNN_HUGE_PAGES"  # "0": never re-execute
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
MIN_GLIBC = (2, 35)  # the first glibc with glibc.malloc.hugetlb


def thp_mode(path: str = THP_ENABLED) -> str | None:
    """The kernel's transparent-huge-page mode ("always", "madvise", "never"), the
    bracketed word of ``path``; None where the file is missing or unreadable."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def glibc_version(text: str | None = None) -> tuple[int, ...] | None:
    """The running glibc's (major, minor), from ``os.confstr("CS_GNU_LIBC_VERSION")``
    ("glibc 2.36"; or ``text`` in that form); None if the C library is not glibc or its
    version does not parse. (``platform.libc_ver()`` would give the newest glibc symbol
    the Python binary was linked against, not the library it runs with.)"""
    if text is None:
        try:
            text = os.confstr("CS_GNU_LIBC_VERSION")
        except (AttributeError, ValueError, OSError):  # no confstr, or not glibc
            return None
    name, _, version = (text or "").partition(" ")
    if name != "glibc":
        return None
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return None


def supported(glibc: tuple[int, ...] | None, thp: str | None) -> bool:
    """Whether the tunable can take effect: glibc >= 2.35 (``glibc``, from
    :func:`glibc_version`) and the kernel's THP mode (``thp``, :func:`thp_mode`) not
    ``never`` or missing."""
    return glibc is not None and glibc >= MIN_GLIBC and thp not in (None, "never")


def split_tunables(env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``env``'s ``GLIBC_TUNABLES``: the other tunables (``name=value`` items, in
    order), and the values given to :data:`TUNABLE_NAME` (usually none or one)."""
    others, values = [], []
    for item in env.get("GLIBC_TUNABLES", "").split(":"):
        name, _, value = item.partition("=")
        if name == TUNABLE_NAME:
            values.append(value)
        elif item:
            others.append(item)
    return others, values


def environment_with_huge_pages(env: Mapping[str, str], glibc: tuple[int, ...] | None,
                                thp: str | None) -> dict[str, str] | None:
    """``env`` with :data:`TUNABLE` appended to ``GLIBC_TUNABLES``, or None when there is
    nothing to do (opted out, already set either way, not :func:`supported`).

    Pure: ``glibc`` is :func:`glibc_version`'s answer and ``thp`` :func:`thp_mode`'s."""
    others, values = split_tunables(env)
    if env.get(OPT_OUT, "") == "0" or values or not supported(glibc, thp):
        return None
    return {**env, "GLIBC_TUNABLES": ":".join([*others, TUNABLE])}


def active(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs with malloc's huge pages on: the tunable set to a
    non-zero value when it started, where it is :func:`supported`."""
    _, values = split_tunables(os.environ if env is None else env)
    return (bool(values) and values[-1] not in ("", "0")
            and supported(glibc_version(), thp_mode()))


def reexec_with_huge_pages() -> None:
    """Replace this process by the same command line with :data:`TUNABLE` in its
    environment (``os.execve`` of ``sys.orig_argv``: same PID, stdio and arguments);
    returns without doing anything where :func:`environment_with_huge_pages` says so.
    Call it first thing in a program's entry point, never from library code."""
    env = environment_with_huge_pages(os.environ, glibc_version(), thp_mode())
    if env is None or not sys.executable or not getattr(sys, "orig_argv", None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)
