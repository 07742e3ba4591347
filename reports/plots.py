"""The report's figures as PNG bytes, drawn on matplotlib's Agg canvas (no display, no pyplot)."""

from __future__ import annotations

import io
from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from byflyt.i18n import month_name, t
from byflyt.models.kommuner import kommune_name
from byflyt.reports.tables import ReportData, months_of

_SIZE = (8.0, 4.0)
_DPI = 100


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def monthly_volumes(data: ReportData) -> bytes:
    """Stacked bars: cyclists per month, one colour per kommune."""
    figure = Figure(figsize=_SIZE)
    axes = figure.add_subplot()
    months = months_of(data.period)
    bottom = [0.0] * len(months)
    for kommune_nr in data.region.kommuner:
        heights = [data.monthly.get((kommune_nr, m), 0.0) for m in months]
        if not any(heights):
            continue
        axes.bar(range(len(months)), heights, bottom=bottom, label=kommune_name(kommune_nr))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_xticks(range(len(months)), [_short(m, data) for m in months])
    axes.set_title(t("plot_monthly", data.lang))
    if any(bottom):
        axes.legend(fontsize="small", ncols=2)
    return _png(figure)


def _short(month: date, data: ReportData) -> str:
    return month_name(month.month, data.lang)[:3]


def index_with_ci(data: ReportData) -> bytes:
    """The index per kommune and for the region, with 95 % CI error bars where there is one."""
    figure = Figure(figsize=_SIZE)
    axes = figure.add_subplot()
    labels, values, low, high = [], [], [], []
    areas = [(kommune_name(k), data.kommune_index[k]) for k in data.region.kommuner]
    areas.append((data.region.name, data.index.area))
    for label, area in areas:
        if area.index is None:
            continue
        labels.append(label)
        values.append(area.index)
        has_ci = area.ci_low is not None and area.ci_high is not None
        low.append(area.index - area.ci_low if has_ci and area.ci_low is not None else 0.0)
        high.append(area.ci_high - area.index if has_ci and area.ci_high is not None else 0.0)
    positions = list(range(len(labels)))
    axes.errorbar(values, positions, xerr=[low, high], fmt="o", capsize=4)
    axes.axvline(0.0, color="grey", linewidth=0.8)
    axes.set_yticks(positions, labels)
    axes.set_xlabel("%")
    axes.set_title(t("plot_index", data.lang))
    return _png(figure)


def hour_profile(data: ReportData) -> bytes:
    """Mean cyclists per local hour in the region, weekday against weekend."""
    figure = Figure(figsize=_SIZE)
    axes = figure.add_subplot()
    for label, values in data.profile.items():
        points = [(h, v) for h, v in enumerate(values) if v is not None]
        axes.plot([h for h, _ in points], [v for _, v in points], marker=".", label=label)
    axes.set_xticks(range(0, 24, 2))
    axes.set_xlabel(t("hour_of_day", data.lang))
    axes.set_ylabel(t("mean_per_hour", data.lang))
    axes.set_title(t("plot_profile", data.lang))
    axes.legend()
    return _png(figure)


def all_plots(data: ReportData) -> list[tuple[str, bytes]]:
    """(title, PNG) of every figure, in the report's order."""
    return [
        (t("plot_monthly", data.lang), monthly_volumes(data)),
        (t("plot_index", data.lang), index_with_ci(data)),
        (t("plot_profile", data.lang), hour_profile(data)),
    ]
