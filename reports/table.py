"""One table of the report, in one shape for HTML and XLSX: typed columns and rows.

Each :class:`ReportTable` holds typed values (``str``, ``int``, ``float``, ``date``, aware
``datetime`` or ``None`` for "no value"), so the HTML shows and the workbook stores exactly the
same numbers; :func:`make_table` titles one from the message catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from byflyt.i18n import MESSAGES, Lang, t

Kind = Literal["text", "int", "float", "pct", "month", "datetime"]


@dataclass(frozen=True)
class Column:
    """A column: its stable key, its heading in the report's language, and its value kind."""

    key: str
    label: str
    kind: Kind


@dataclass
class ReportTable:
    """One table of the report; one HTML section and one workbook sheet."""

    key: str
    title: str
    sheet: str
    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]
    note: str = ""

    def records(self) -> list[dict[str, Any]]:
        """The rows as column key → value."""
        return [dict(zip((c.key for c in self.columns), row, strict=True)) for row in self.rows]


def make_table(
    key: str, lang: Lang, columns: list[tuple[str, Kind]], rows: list[tuple[Any, ...]]
) -> ReportTable:
    """The table ``key`` with its title, sheet name, headings and note in ``lang``."""
    note_key = f"note_{key}"
    return ReportTable(
        key=key,
        title=t(key, lang),
        sheet=t(f"sheet_{key}", lang),
        columns=tuple(Column(k, t(k, lang), kind) for k, kind in columns),
        rows=rows,
        note=t(note_key, lang) if note_key in MESSAGES else "",
    )


def hours_between(start: datetime, end: datetime) -> int:
    """Whole hours in ``[start, end)`` (23, 24 or 25 on a local day)."""
    return max(0, int((end - start).total_seconds()) // 3600)
