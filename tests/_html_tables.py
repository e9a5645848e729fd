"""Reading back the HTML tables mrclient shows in a notebook, with the standard library's parser.

Tests check what a table *says* (its caption, its rows, the text of each
cell) rather than how it is marked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Table:
    """One ``<table>``: its caption, its header cells, and each body row as header -> cell text."""

    caption: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)
    #: Cells of rows that span the table (a "… N more" line).
    notes: list[str] = field(default_factory=list)

    def column(self, title: str) -> list[str]:
        return [row[title] for row in self.rows]

    def by(self, title: str) -> dict[str, dict[str, str]]:
        """The rows keyed by the text of one column (say, the model id)."""
        return {row[title]: row for row in self.rows}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.text: list[str] = []  # everything outside tables, for the lines above them
        self._table: Table | None = None
        self._where: str | None = None  # "caption", "th" or "td"
        self._cell: list[str] = []
        self._row: list[str] = []
        self._spanning = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = Table()
        elif self._table is not None and tag in ("caption", "th", "td"):
            self._where, self._cell = tag, []
            self._spanning = tag == "td" and any(name == "colspan" for name, _ in attrs)
        elif self._table is not None and tag == "tr":
            self._row = []
        elif self._table is None and tag == "br":
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        table = self._table
        if table is None:
            if tag == "p":
                self.text.append("\n")
            return
        if tag == "table":
            self.tables.append(table)
            self._table = None
        elif tag == self._where:
            text = "".join(self._cell).strip()
            if tag == "caption":
                table.caption = text
            elif tag == "th":
                table.header.append(text)
            elif self._spanning:
                table.notes.append(text)
            else:
                self._row.append(text)
            self._where = None
        elif tag == "tr" and self._row:
            table.rows.append(dict(zip(table.header, self._row, strict=True)))
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._where is not None:
            self._cell.append(data)
        elif self._table is None:
            self.text.append(data)


def tables(html: str) -> list[Table]:
    """Every table of ``html``, in order."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.tables


def text_outside_tables(html: str) -> str:
    """The text of ``html`` outside its tables (headings, summary lines), lines kept."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return "".join(parser.text)
