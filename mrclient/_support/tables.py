"""Tables for people: HTML for a notebook, aligned text for a terminal, DataFrames for pandas users.

Round results, the runner and its statistics show themselves through these
helpers (``_repr_html_``, ``__repr__``, ``to_frame()``), and only when they are
shown: nothing here runs on a round's path. Every function takes plain rows
(one dict per row) and returns a string, so what a table says is tested by
parsing it. Times are shown as local datetimes, latencies in milliseconds,
long values shortened (in full in the cell's tooltip).

Text fits a width: ``text_table(..., width=80)`` cuts the long values of the
columns that may be cut (with an ellipsis), then drops the least useful
columns, and never cuts the model nor a status nor a number; ``fit_widths``
is that decision as a pure function (``mrclient watch`` fits its table with
it too), ``fit_line`` wraps a caption. ``terminal_width()`` is the width the
reprs use: the terminal's when standard output is one, else none (a pipe, a
file or a notebook get every column whole).

A ``to_frame()`` follows one rule for a missing value (``frame``): NaN in a
numeric column, NaT in a time column, None in any other (text) column.

This module imports nothing else of mrclient, and pandas only inside
``frame``: the plain install needs neither pandas nor IPython.
"""

from __future__ import annotations

import datetime
import html
import math
import shutil
import sys
import textwrap
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
    "clip",
    "clock",
    "counted",
    "fit_line",
    "fit_widths",
    "frame",
    "html_table",
    "milliseconds",
    "shorten",
    "terminal_width",
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
    "closed": "#6e7781",
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


def clip(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (as is for None); spaces are kept."""
    if width is None or len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 model``, ``3 models``: a count and its noun, plural unless the count is one."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


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

    ``format`` gives the text of a value, ``cell`` (when given) the text of
    the row's cell from the whole row instead; ``html``, when given, its HTML
    (a status badge). Numbers align right.
    """

    key: str
    title: str
    format: Format = plain
    html: Callable[[Mapping[str, Any]], str] | None = None
    cell: Callable[[Mapping[str, Any]], str] | None = None
    numeric: bool = False
    #: Text longer than this is shortened, in full in the cell's tooltip (0: never).
    width: int = 0
    #: In a text table too wide for its width: the fewest characters this column is cut to (with an
    #: ellipsis); None never cuts it (the model, a status). Numbers are never cut.
    least: int | None = 8
    #: When even the least widths do not fit: columns with a higher ``drop`` go first; 0 is never dropped.
    drop: int = 0


def _cell_text(column: Column, row: Mapping[str, Any]) -> str:
    if column.cell is not None:
        return column.cell(row)
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


def terminal_width() -> int | None:
    """The terminal's width in characters when standard output is a terminal, else None (keep every column whole).

    ``shutil.get_terminal_size`` reads ``COLUMNS``, then the terminal; a pipe,
    a file or a notebook's output is not a terminal, and gets full width.
    """
    stream = sys.stdout
    try:
        if stream is None or not stream.isatty():
            return None
    except (AttributeError, ValueError):  # a replaced stdout without isatty, or a closed one
        return None
    return shutil.get_terminal_size().columns


def fit_widths(
    natural: Sequence[int], least: Sequence[int | None], drop: Sequence[int], width: int, gap: int = 2
) -> list[int | None]:
    """Each column's width in a table of at most ``width`` characters, or None for a column dropped.

    ``natural`` is each column's width uncut, ``least`` the fewest characters
    it may be cut to (None: never cut), ``drop`` when it goes (a higher one
    first, 0 never) and ``gap`` what separates two columns. Columns are
    dropped, by ``drop``, only while even their least widths do not fit;
    then the widest column that may still shrink loses a character, until the
    table fits. When even that is not enough (columns never cut or dropped
    are wider than ``width``), the widths are as small as they may be and the
    lines are longer than ``width``.
    """
    count = len(natural)
    floor = [n if low is None else min(n, max(low, 1)) for n, low in zip(natural, least, strict=True)]
    shown = list(range(count))

    def total(widths: Sequence[int]) -> int:
        return sum(widths[i] for i in shown) + gap * max(0, len(shown) - 1)

    droppable = sorted((i for i in range(count) if drop[i]), key=lambda i: -drop[i])
    while total(floor) > width and droppable:
        shown.remove(droppable.pop(0))
    widths = list(natural)
    excess = total(widths) - width
    while excess > 0:
        slack = [(widths[i] - floor[i], i) for i in shown if widths[i] > floor[i]]
        if not slack:
            break
        _, widest = max(slack)
        widths[widest] -= 1
        excess -= 1
    return [widths[i] if i in shown else None for i in range(count)]


def fit_line(text: str, width: int | None, indent: str = "  ") -> str:
    """``text`` wrapped at spaces into lines of at most ``width`` characters, the next ones indented (None: as is)."""
    if width is None or len(text) <= width:
        return text
    return "\n".join(
        textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [text]
    )


def text_table(
    columns: Sequence[Column], rows: Iterable[Mapping[str, Any]], *, indent: str = "  ", width: int | None = None
) -> str:
    """The same table as aligned text lines (no colours), for a ``__repr__`` or a command's output.

    With ``width`` (``terminal_width()``, or the command line's), each line,
    ``indent`` included, fits in ``width`` characters: long values are cut
    with an ellipsis down to their column's ``least``, then the columns with
    the highest ``drop`` go (see ``fit_widths``); the model, the statuses and
    the numbers are never cut. None keeps every column whole.
    """
    texts = [[column.title for column in columns]]
    for row in rows:
        texts.append([shorten(_cell_text(column, row), column.width or CELL_CHARS) for column in columns])
    widths: list[int | None] = [max(len(line[index]) for line in texts) for index in range(len(columns))]
    if width is not None:
        natural = [w or 0 for w in widths]
        least = [None if column.numeric else column.least for column in columns]
        widths = fit_widths(natural, least, [column.drop for column in columns], width - len(indent))
    lines = []
    for line in texts:
        cells = [
            (cell.rjust(size) if column.numeric else shorten(cell, size).ljust(size))
            for cell, size, column in zip(line, widths, columns, strict=True)
            if size is not None
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def frame(
    records: list[dict[str, Any]],
    columns: Sequence[str],
    index: str | Sequence[str] | None = None,
    *,
    numeric: Iterable[str] = (),
    times: Iterable[str] = (),
) -> Any:
    """A pandas DataFrame of ``records`` (``columns`` in this order, even with no record).

    One rule for a missing value, in every ``to_frame()``: NaN in the
    ``numeric`` columns (float, even when every value is missing), NaT in the
    ``times`` columns (aware datetimes, in the zone of the first one), None in
    every other column (object dtype, text or any value) but a flag's (bool,
    never missing). Raises ImportError
    naming the extra that brings pandas when it is missing.
    """
    try:
        import pandas
    except ImportError as error:
        raise ImportError(
            f"to_frame() needs pandas (to_records() needs nothing): {install_hint(NOTEBOOK_EXTRA)}"
        ) from error
    table = pandas.DataFrame.from_records(records, columns=list(columns))
    numeric, times = set(numeric), set(times)
    for key in columns:
        values = table[key]
        if key in numeric:
            table[key] = pandas.to_numeric(values).astype(float) if values.isna().any() else pandas.to_numeric(values)
        elif key in times:
            zone = next((value.tzinfo for value in values if isinstance(value, datetime.datetime)), None)
            moments = pandas.to_datetime(values, utc=True)
            table[key] = moments if zone is None else moments.dt.tz_convert(zone)
        elif not pandas.api.types.is_bool_dtype(values):  # a flag is never missing: it stays bool
            table[key] = values.astype(object).where(values.notna(), None)
    if index is not None:
        table = table.set_index(index if isinstance(index, str) else list(index))
    return table
