"""The indicator report: one self-contained HTML file and one XLSX workbook per region and period.

The HTML has its CSS inline and its figures as base64 PNG ``data:`` URIs, so it can be mailed or
archived as one file. The workbook has one sheet per table, typed cells (numbers as numbers,
months and times as Excel dates) and a frozen header row. Both show the same
:class:`~byflyt.reports.table.ReportTable` values. Excel has no time zones: times are written
as Europe/Oslo wall-clock times, which the column notes say.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from byflyt.i18n import Lang, format_date, format_number, month_name, t
from byflyt.models.kommuner import Region
from byflyt.queries.index import Period
from byflyt.reports.plots import all_plots
from byflyt.reports.table import Column, ReportTable
from byflyt.reports.tables import ReportData, build_report
from byflyt.store import Store

SECTION_ORDER = (
    "cycling_monthly",
    "walking_monthly",
    "index",
    "index_points",
    "transit",
    "transit_flows",
    "outages",
    "data_quality",
    "plots",
    "attributions",
)
"""HTML section ids, in order (``plots`` holds the figures; the rest are tables, and
``walking_monthly`` is there only when the region has pedestrian counting points)."""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; }
.synthetic { display: inline-block; background: #b3261e; color: #fff; padding: .2rem .6rem;
             border-radius: .3rem; font-weight: 700; letter-spacing: .03em; }
.meta { color: #555; margin: .2rem 0; }
section { margin-top: 2.2rem; }
h2 { font-size: 1.3rem; border-bottom: 2px solid #2d6a4f; padding-bottom: .2rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { padding: .25rem .5rem; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #eef5f1; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 700; border-top: 2px solid #2d6a4f; }
.note { color: #555; font-size: .85rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9rem; }
"""


@dataclass(frozen=True)
class WrittenReport:
    """Where the report was written, and what it holds."""

    html: Path
    xlsx: Path
    data: ReportData


def period_for(year: int, month: int | None) -> Period:
    """The report's period: a whole year, or one month of it."""
    if month is None:
        return Period(f"{year:04d}", date(year, 1, 1), date(year + 1, 1, 1))
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} is not 1–12")
    end = date(year + (month == 12), month % 12 + 1, 1)
    return Period(f"{year:04d}-{month:02d}", date(year, month, 1), end)


def period_title(period: Period, lang: Lang) -> str:
    """``oktober 2025`` or ``2025``."""
    if len(period.label) == 7:
        return f"{month_name(period.start.month, lang)} {period.start.year}"
    return period.label


def write_report(
    store: Store,
    region: Region,
    year: int,
    month: int | None,
    out_dir: Path,
    *,
    lang: Lang = "nb",
    min_hours: int,
    synthetic: bool | None = None,
    now: datetime | None = None,
) -> WrittenReport:
    """Build the report from ``store`` and write ``byflyt-<region>-<period>.html`` and ``.xlsx``."""
    period = period_for(year, month)
    data = build_report(
        store,
        region,
        period,
        lang=lang,
        min_hours=min_hours,
        synthetic=synthetic,
        now=now,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"byflyt-{region.key}-{period.label}-{lang}"
    html_path = out_dir / f"{stem}.html"
    xlsx_path = out_dir / f"{stem}.xlsx"
    html_path.write_text(render_html(data), encoding="utf-8")
    write_xlsx(data, xlsx_path)
    return WrittenReport(html_path, xlsx_path, data)


def heading(data: ReportData) -> str:
    """``Byflyt-rapport: Mjøsbyen, oktober 2025`` (with the synthetic-data mark when it is)."""
    period = period_title(data.period, data.lang)
    text = f"{t('report_title', data.lang)}: {data.region.name}, {period}"
    return f"{text} — {t('report_synthetic', data.lang)}" if data.synthetic else text


# -- HTML ------------------------------------------------------------------------------------
def _cell(value: Any, column: Column, lang: Lang) -> str:
    if value is None:
        return ""
    if column.kind == "month" and isinstance(value, date):
        return f"{month_name(value.month, lang)} {value.year}"
    if column.kind == "datetime" and isinstance(value, datetime):
        return format_date(value, lang)
    if column.kind in ("int", "float", "pct") and isinstance(value, (int, float)):
        decimals = 0 if isinstance(value, int) else (1 if column.kind == "pct" else 2)
        return format_number(value, lang, decimals)
    return str(value)


def _html_table(table: ReportTable, lang: Lang, total_last: bool = False) -> str:
    numeric = [c.kind in ("int", "float", "pct") for c in table.columns]
    head = "".join(f"<th>{html.escape(c.label)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cls = ' class="total"' if total_last and i == len(table.rows) - 1 else ""
        cells = "".join(
            f"<td{' class=num' if num else ''}>{html.escape(_cell(v, c, lang))}</td>"
            for v, c, num in zip(row, table.columns, numeric, strict=True)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    if not table.rows:
        body.append(f'<tr><td colspan="{len(table.columns)}">{t("no_rows", lang)}</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (inline CSS, inline PNG figures)."""
    lang = data.lang
    start, end = data.period.base_dates()
    base = f"{format_date(start, lang)}–{format_date(_last(end), lang)}"
    current = f"{format_date(data.period.start, lang)}–{format_date(_last(data.period.end), lang)}"
    parts = [
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{html.escape(heading(data))}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
        "<header>\n",
        f"<h1>{html.escape(heading(data).split(' — ')[0])}</h1>\n",
    ]
    if data.synthetic:
        parts.append(
            f'<p class="synthetic">{html.escape(t("report_synthetic", lang))}</p>\n'
            f'<p class="meta">{html.escape(t("synthetic_note", lang))}</p>\n'
        )
    parts.append(
        f'<p class="meta">{t("period", lang)}: {current} ({t("base_period", lang)} {base}). '
        f"{t('dates_note', lang)}</p>\n"
        f'<p class="meta">{t("generated", lang)}: {format_date(data.generated, lang)}</p>\n'
        "</header>\n"
    )
    for key in SECTION_ORDER:
        if key == "plots":
            parts.append(_plots_section(data))
            continue
        table = data.tables.get(key)
        if table is None:
            continue
        parts.append(f'<section id="{key}">\n<h2>{html.escape(table.title)}</h2>\n')
        if table.note:
            parts.append(f'<p class="note">{html.escape(table.note)}</p>\n')
        if key == "data_quality":
            parts.extend(f'<p class="note">{html.escape(n)}</p>\n' for n in data.notes)
        parts.append(_html_table(table, lang, total_last=key == "index") + "\n</section>\n")
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def _last(end: date) -> date:
    return date.fromordinal(end.toordinal() - 1)


def _plots_section(data: ReportData) -> str:
    figures = []
    for title, png in all_plots(data):
        encoded = base64.b64encode(png).decode("ascii")
        figures.append(
            f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>\n"
        )
    return f'<section id="plots">\n<h2>{t("plots", data.lang)}</h2>\n{"".join(figures)}</section>\n'


# -- XLSX ------------------------------------------------------------------------------------
_FORMATS = {
    "int": "#,##0",
    "float": "0.00",
    "pct": "0.0",
    "month": "yyyy-mm",
    "datetime": "yyyy-mm-dd hh:mm",
}


def _excel_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # Excel cells have no time zone: the Oslo wall clock is what the column promises.
        return value.replace(tzinfo=None)
    return value


def write_xlsx(data: ReportData, path: Path) -> None:
    """One sheet per table, typed cells, bold frozen header row."""
    workbook = Workbook()
    workbook.remove(workbook.worksheets[0])
    workbook.properties.title = heading(data)
    workbook.properties.creator = "byflyt"
    bold = Font(bold=True)
    for key in SECTION_ORDER:
        table = data.tables.get(key)
        if table is None:
            continue
        sheet = workbook.create_sheet(title=table.sheet)
        sheet.append([c.label for c in table.columns])
        for cell in sheet[1]:
            cell.font = bold
        for row in table.rows:
            sheet.append([_excel_value(v) for v in row])
        for index, column in enumerate(table.columns, start=1):
            letter = get_column_letter(index)
            number_format = _FORMATS.get(column.kind)
            if number_format:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                    cell.number_format = number_format
            longest = max([len(column.label), *(len(str(r[index - 1] or "")) for r in table.rows)])
            sheet.column_dimensions[letter].width = min(60, max(10, longest + 2))
        sheet.freeze_panes = "A2"
    workbook.save(path)
