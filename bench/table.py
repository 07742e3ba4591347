"""The one table every benchmark reports into: benchmark, byflyt, baseline, ratio, goal, met?."""

from __future__ import annotations

Row = tuple[str, str, str, str, str, str]
HEADER: Row = ("benchmark", "byflyt", "baseline", "ratio", "goal", "met?")


def row(benchmark: str, *, byflyt: str, baseline: str, ratio: str, goal: str, met: bool) -> Row:
    """One row; ``met`` says whether the goal was met."""
    return (benchmark, byflyt, baseline, ratio, goal, "yes" if met else "no")


def lines(rows: list[Row]) -> str:
    """The rows as a Markdown table, header first."""
    text = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    text += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(text) + "\n"
