"""The package laid out as installed, for mypy: ``build/typecheck/byflyt/streams`` → ``streams/``.

pyproject.toml maps ``byflyt.streams`` to the top-level folder ``streams/`` (and so on). mypy cannot
follow that mapping or the editable install's import hook, so without this tree every import across
the packages is read as ``Any``. The links are made from pyproject's own ``package-dir``, so the
two cannot drift apart. Usage: ``python deploy/typed_tree.py build/typecheck``; then
``MYPYPATH=build/typecheck mypy -p byflyt``.
"""

import shutil
import sys
import tomllib
from pathlib import Path


def main(target: Path) -> None:
    """Make ``target`` hold a ``byflyt`` package of links into this repository."""
    root = Path(__file__).resolve().parent.parent
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    shutil.rmtree(target, ignore_errors=True)
    package = target / "byflyt"
    package.mkdir(parents=True)
    for module in (root / mapping["byflyt"]).glob("*.py"):
        (package / module.name).symlink_to(module)
    for name, folder in mapping.items():
        if name != "byflyt":
            (package / name.removeprefix("byflyt.")).symlink_to(root / folder)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
