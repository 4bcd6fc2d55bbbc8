"""Tables that fit the terminal without losing what identifies a row, and print whole when piped.

rich shrinks a table that is wider than the terminal by narrowing its wrappable columns and, as a
last resort, cutting every column with an ellipsis: at 80 columns ``tlsgate status`` showed
neither names nor issuers (their columns collapsed to nothing) and serials ending in "…". So
the layout is decided here, before rich sees the table:

- columns marked ``keep`` (a certificate's name, serial, expiry: what a person looks a row up
  by) are always shown; ``fold`` ones (names, URLs) fold onto more lines rather than widen the
  table, never below a few characters;
- the others are added, most important first, only while the table still fits; what does not
  fit is left out rather than squeezed into fragments (``--json`` has every field);
- when stdout is not a terminal (a pipe, a file, a CI log) there is no width to fit: every
  column, every value in full on one line per row, so ``grep`` and ``awk`` see whole values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "fit_table", "print_table"]

#: A folding column is never made narrower than this (or its widest value, if shorter).
FOLD_MIN = 12
#: Columns that are not kept are shown only while every folding column still gets this much.
FOLD_WANT = 20


@dataclass(frozen=True)
class Column:
    header: str
    #: Identifying: shown at any width.
    keep: bool = False
    #: Long values fold onto more lines instead of widening the table.
    fold: bool = False
    #: Among the columns that are not kept, higher ones are shown first when room is short.
    priority: int = 0
    justify: JustifyMethod = "left"


def _overhead(count: int) -> int:
    """Cells beyond the values: one space each side of a value, one rule between columns (the
    tables are drawn without an outer edge)."""
    return 3 * count - 1 if count else 0


def _natural(columns: Sequence[Column], rows: Sequence[Sequence[Text]]) -> list[int]:
    return [
        max([Text(c.header).cell_len, *(row[i].cell_len for row in rows)])
        for i, c in enumerate(columns)
    ]


def fit_table(
    columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int | None
) -> tuple[Table, list[str]]:
    """The table for a terminal ``width`` wide (``None``: no limit, every column unfolded), and
    the headers of the columns left out."""
    natural = _natural(columns, rows)

    def least(i: int, fold: int = FOLD_MIN) -> int:
        return min(natural[i], fold) if columns[i].fold else natural[i]

    def need(shown: Sequence[int], fold: int = FOLD_MIN) -> int:
        return sum(least(i, fold) for i in shown) + _overhead(len(shown))

    shown = [i for i, c in enumerate(columns) if c.keep or width is None]
    # Even the identifying columns do not fit: let them fold too rather than be cut.
    squeeze = width is not None and need(shown) > width
    if width is not None:
        # Most important first, and none after the first that does not fit: a column is never
        # shown while a more important one is left out.
        optional = [i for i, c in enumerate(columns) if not c.keep]
        for i in sorted(optional, key=lambda i: -columns[i].priority):
            if need([*shown, i], FOLD_WANT) > width:
                break
            shown.append(i)
        shown.sort()
    table = Table(show_edge=False, header_style="bold")
    for i in shown:
        column = columns[i]
        folds = width is not None and (column.fold or squeeze)
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not folds,
            overflow="fold",
            min_width=least(i) if folds and not squeeze else None,
        )
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table, [c.header for i, c in enumerate(columns) if i not in shown]


def print_table(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Text]]
) -> None:
    """Fitted to the terminal; in full when stdout is not one."""
    if console.is_terminal:
        table, hidden = fit_table(columns, rows, console.width)
        console.print(table)
        if hidden:
            console.print(
                Text(f"(too narrow for: {', '.join(hidden)}; --json has every field)", "dim")
            )
        return
    table, _ = fit_table(columns, rows, None)
    measured = Measurement.get(console, console.options.update_width(1 << 20), table)
    # A console exactly as wide as the table: nothing folds, nothing is cut, no padding.
    wide = Console(
        highlight=False,
        width=max(measured.maximum, 1),
        file=console.file,
        color_system=None,
        force_terminal=False,
    )
    wide.print(table)
