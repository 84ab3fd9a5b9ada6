"""Tables that fit the terminal: whole columns left out by priority, never a cut number."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text


def fit_columns(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None,
                drop_order: Sequence[str]) -> tuple[list[int], list[str]]:
    """The indexes of the columns to show and the names of those left out (headers in ``drop_order`` first to go)
    so that the table (one space of padding each side and a rule between columns) fits ``width``; None: all."""
    widths = [max(*(len(line) for line in header.split("\n")), *(Text.from_markup(row[c]).cell_len for row in rows), 1)
              for c, header in enumerate(headers)]
    keep = list(range(len(headers)))
    left_out: list[str] = []
    for header in drop_order:
        if width is None or sum(widths[c] + 3 for c in keep) + 1 <= width:
            break
        if header in headers and headers.index(header) in keep:
            keep.remove(headers.index(header))
            left_out.append(header.replace("\n", " "))
    return keep, left_out
