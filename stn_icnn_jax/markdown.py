"""Markdown tables and report files, as the benchmark and experiment scripts write them.

:func:`table` gives the lines of a pipe table (a header row, a ``|---|`` rule, one line
per row; every cell is ``str()``-ed, so callers format numbers themselves), :func:`write`
puts a report's lines into a file (parent folders created) and returns its text.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Sequence


def row(cells: Sequence) -> str:
    """One table line: ``| a | b |``."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    """The lines of a table with ``header``'s columns and one line per row of ``rows``."""
    return [row(header), "|" + "---|" * len(header), *(row(r) for r in rows)]


def write(path: str | Path, lines: Iterable[str]) -> str:
    """Writes ``lines`` joined by newlines to ``path`` (creating its folder); returns the text."""
    text = "\n".join(lines)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def report(lines: list[str], script: str, argv: Sequence[str] | None,
           out: str | Path | None) -> str:
    """Ends a script's report with the command that made it (``python SCRIPT ARGS``;
    ``argv`` None: this process's arguments), prints it and writes it to ``out`` (if
    given); returns the text."""
    command = " ".join(["python", script, *(argv if argv is not None else sys.argv[1:])])
    lines = [*lines, "", f"Command: `{command}`", ""]
    text = "\n".join(lines)
    print(text)
    if out:
        write(out, lines)
    return text
