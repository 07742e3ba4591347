"""Imports run one way: web/cli → queries/reports/streams/connectors → store/models → foundation.

Every module of the product is parsed (``ast``, nothing is imported) and each ``import`` in it,
at module level or inside a function, is checked against the layer of the module it names. The
foundation is ``byflyt/*.py``; ``samples/`` and ``bench/`` may import anything (they play the
sources and drive the whole product), and nothing in the product may import them back except
the demo and the tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Folder in the repository → its package in the byflyt namespace (pyproject's package-dir).
PACKAGES = {
    "byflyt": "byflyt",
    "models": "byflyt.models",
    "store": "byflyt.store",
    "connectors": "byflyt.connectors",
    "streams": "byflyt.streams",
    "queries": "byflyt.queries",
    "reports": "byflyt.reports",
    "cli": "byflyt.cli",
    "web": "byflyt.web",
}

# Each part's layer: a module may import its own layer and the ones below, never above.
LAYER = {
    "foundation": 0,
    "models": 1,
    "store": 1,
    "connectors": 2,
    "streams": 2,
    "queries": 2,
    "reports": 2,
    "cli": 3,
    "web": 3,
    "samples": 4,
    "bench": 4,
}

# The demo runs the sample servers and data inside the product, on purpose.
MAY_IMPORT_SAMPLES = {"byflyt.cli.demo"}

# `python -m byflyt` is the command line's entry point, not part of the foundation.
ENTRY_POINTS = {"byflyt.__main__": "cli"}


def part_of(module: str) -> str | None:
    """The part (``models``, ``cli``, … or ``foundation``) a ``byflyt…`` module belongs to."""
    if module in ENTRY_POINTS:
        return ENTRY_POINTS[module]
    names = module.split(".")
    if names[0] == "bench":
        return "bench"
    if names[0] != "byflyt":
        return None
    if len(names) == 1:
        return "foundation"
    return names[1] if names[1] in LAYER else "foundation"


def product_modules() -> dict[str, Path]:
    """Every product module by its dotted name in the byflyt namespace."""
    modules: dict[str, Path] = {}
    for folder, package in {**PACKAGES, "samples": "byflyt.samples"}.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    for path in sorted((REPO / "bench").rglob("*.py")):
        modules[".".join(path.relative_to(REPO).with_suffix("").parts)] = path
    return modules


def imported(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path``, relative ones resolved."""
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from byflyt import cli` names the package through an alias.
            found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names)
    return found


def violations(module: str, path: Path) -> list[str]:
    """The imports in ``path`` (the module ``module``) that name a higher layer's module."""
    own = part_of(module)
    assert own is not None, module
    wrong: list[str] = []
    for line, name in imported(module, path):
        target = part_of(name)
        if target is None or LAYER[target] <= LAYER[own]:
            continue
        if target == "samples" and module in MAY_IMPORT_SAMPLES:
            continue
        wrong.append(f"{line}: {own} imports {target} ({name})")
    return sorted(set(wrong))


def test_imports_run_one_way() -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{found}"
        for module, path in product_modules().items()
        for found in violations(module, path)
    ]
    assert not wrong, "modules importing upward:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("byflyt.settings", "from byflyt.store import Store", ["foundation imports store"]),
        ("byflyt.store.rows", "from ..streams import app", ["store imports streams"]),
        ("byflyt.models.geo", "import byflyt.cli.demo", ["models imports cli"]),
        (
            "byflyt.queries.hourly",
            "def f():\n    from byflyt.web import api",
            ["queries imports web"],
        ),
        ("byflyt.streams.app", "from byflyt import cli", ["streams imports cli"]),
        (
            "byflyt.connectors.base",
            "from byflyt.samples import gtfs",
            ["connectors imports samples"],
        ),
        ("byflyt.cli.demo", "from byflyt.samples import gtfs", []),
        ("byflyt.cli.query", "from byflyt.queries.hourly import x", []),
        ("byflyt.store.rows", "from byflyt.models.base import Mode", []),
        ("byflyt.models.gtfs.load", "from .feed import StaticFeed", []),
    ],
)
def test_the_check_sees_an_upward_import(
    tmp_path: Path, module: str, source: str, expected: list[str]
) -> None:
    path = tmp_path / "module.py"
    path.write_text(source, "utf-8")
    found = sorted({text.split(" (")[0].split(": ", 1)[1] for text in violations(module, path)})
    assert found == expected


def test_the_readme_folder_table_names_every_package_and_only_real_folders() -> None:
    text = (REPO / "README.md").read_text("utf-8")
    table = text[text.index("| folder | what | imports |") :].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    folders = {row.split("`")[1] for row in rows}
    parts = (*PACKAGES, "samples", "bench", "deploy", "tests")
    assert {f"{folder}/" for folder in parts} <= folders
    named = {p for row in rows for p in row.split("`")[1::2] if "/" in p and p[0] != "/"}
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert not missing, f"the README's folder table names paths that do not exist: {missing}"
