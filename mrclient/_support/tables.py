"""Tables for people: HTML for a notebook, aligned text for a terminal, DataFrames for pandas users.

Round results, the runner and its statistics show themselves through these
helpers (``_repr_html_``, ``__repr__``, ``to_frame()``), and only when they are
shown: nothing here runs on a round's path. Every function takes plain rows
(one dict per row) and returns a string, so what a table says is tested by
parsing it. Times are shown as local datetimes, latencies in milliseconds,
long values shortened (in full in the cell's tooltip).

This module imports nothing else of mrclient, and pandas only inside
``frame``: the plain install needs neither pandas nor IPython.
"""

from __future__ import annotations

import datetime
import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .extras import install_hint

__all__ = [
    "Column",
    "NOTEBOOK_EXTRA",
    "STATUS_COLOURS",
    "as_datetime",
    "badge",
    "clock",
    "frame",
    "html_table",
    "milliseconds",
    "shorten",
    "text_table",
]

#: The extra that brings pandas and matplotlib (``extras.install_hint`` says how to install it).
NOTEBOOK_EXTRA = "notebook"
#: Background colours of a status badge (white text on them reads in light and dark themes).
STATUS_COLOURS: Mapping[str, str] = {
    "SUCCESS": "#1a7f37",
    "FAILED": "#cf222e",
    "TIMEOUT": "#9a6700",
    "MODEL_LEFT": "#6e7781",
    "ready": "#1a7f37",
    "resting": "#9a6700",
    "left": "#6e7781",
}
#: The widest a text cell gets before it is shortened.
CELL_CHARS = 60

Format = Callable[[Any], str]


def as_datetime(timestamp: float | None) -> datetime.datetime | None:
    """A ``time.time()`` timestamp as an aware local datetime; None (or NaN) stays None."""
    if timestamp is None or not math.isfinite(timestamp):
        return None
    return datetime.datetime.fromtimestamp(timestamp).astimezone()


def clock(timestamp: float | None) -> str:
    """``2026-03-01 09:07:32`` in local time, or an empty string."""
    moment = as_datetime(timestamp)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def milliseconds(value: float | None) -> str:
    """A latency in milliseconds, to a tenth below 100 ms; empty for None."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def shorten(value: Any, width: int = CELL_CHARS) -> str:
    """``str(value)`` (``repr`` for anything but text) on one line, cut to ``width`` characters with an ellipsis."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def plain(value: Any) -> str:
    """A cell as text: None is empty."""
    return "" if value is None else str(value)


def badge(label: str | None, colour_of: str | None = None) -> str:
    """``label`` on the colour of ``colour_of`` (default: the label itself) as an HTML span; plain if unknown."""
    if not label:
        return ""
    colour = STATUS_COLOURS.get(colour_of or label)
    text = html.escape(label)
    if colour is None:
        return text
    return (
        f'<span class="mrclient-status" style="background:{colour};color:#fff;padding:0 0.4em;'
        f'border-radius:0.25em;white-space:nowrap">{text}</span>'
    )


@dataclass(frozen=True)
class Column:
    """One column of a table: the row key it shows, its title, and how a value reads.

    ``format`` gives the text of a value; ``html``, when given, its HTML
    instead (a status badge). Numbers align right.
    """

    key: str
    title: str
    format: Format = plain
    html: Callable[[Mapping[str, Any]], str] | None = None
    numeric: bool = False
    #: Text longer than this is shortened, in full in the cell's tooltip (0: never).
    width: int = 0


def _cell_text(column: Column, row: Mapping[str, Any]) -> str:
    return column.format(row.get(column.key))


def html_table(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    caption: str | None = None,
    more: str | None = None,
    css_class: str = "mrclient-table",
) -> str:
    """An HTML table: a header row, one ``<tr>`` per row, and an optional caption and last line.

    ``caption`` and ``more`` are plain text (escaped here); ``more`` is a last
    row spanning every column, saying what was left out.
    """
    parts = [f'<table class="{css_class}" style="border-collapse:collapse">']
    if caption:
        parts.append(f'<caption style="caption-side:top;text-align:left">{html.escape(caption)}</caption>')
    header = "".join(
        f'<th style="text-align:{"right" if column.numeric else "left"}">{html.escape(column.title)}</th>'
        for column in columns
    )
    parts.append(f"<thead><tr>{header}</tr></thead><tbody>")
    for row in rows:
        cells = []
        for column in columns:
            align = "right" if column.numeric else "left"
            if column.html is not None:
                cells.append(f'<td style="text-align:{align}">{column.html(row)}</td>')
                continue
            text = _cell_text(column, row)
            if column.width and len(text) > column.width:
                cells.append(
                    f'<td style="text-align:{align}" title="{html.escape(text)}">'
                    f"{html.escape(shorten(text, column.width))}</td>"
                )
            else:
                cells.append(f'<td style="text-align:{align}">{html.escape(text)}</td>')
        parts.append(f"<tr>{''.join(cells)}</tr>")
    if more:
        parts.append(f'<tr><td colspan="{len(columns)}"><em>{html.escape(more)}</em></td></tr>')
    parts.append("</tbody></table>")
    return "".join(parts)


def text_table(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], *, indent: str = "  ") -> str:
    """The same table as aligned text lines (no colours), for a ``__repr__``."""
    texts = [[column.title for column in columns]]
    for row in rows:
        texts.append([shorten(_cell_text(column, row), column.width or CELL_CHARS) for column in columns])
    widths = [max(len(line[index]) for line in texts) for index in range(len(columns))]
    lines = []
    for line in texts:
        cells = [
            cell.rjust(width) if column.numeric else cell.ljust(width)
            for cell, width, column in zip(line, widths, columns, strict=True)
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def frame(records: list[dict[str, Any]], columns: Sequence[str], index: str | Sequence[str] | None = None) -> Any:
    """A pandas DataFrame of ``records`` (``columns`` in this order, even with no record).

    Raises ImportError naming the extra that brings pandas when it is missing.
    """
    try:
        import pandas
    except ImportError as error:
        raise ImportError(
            f"to_frame() needs pandas (to_records() needs nothing): {install_hint(NOTEBOOK_EXTRA)}"
        ) from error
    table = pandas.DataFrame.from_records(records, columns=list(columns))
    if index is not None:
        table = table.set_index(index if isinstance(index, str) else list(index))
    return table
