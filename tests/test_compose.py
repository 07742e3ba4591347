"""docker-compose.yml parses, and every byflyt service runs a command the CLI has."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.main import get_command

from byflyt.cli import app

REPO = Path(__file__).resolve().parent.parent


def cli_paths() -> set[tuple[str, ...]]:
    root = get_command(app)
    paths: set[tuple[str, ...]] = set()

    def walk(command: object, prefix: tuple[str, ...]) -> None:
        commands = getattr(command, "commands", None)  # only groups have subcommands
        if commands is None:
            paths.add(prefix)
            return
        for name, sub in commands.items():
            walk(sub, (*prefix, name))

    walk(root, ())
    return paths


def test_compose_services_use_real_commands() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "postgres", "worker"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    known = cli_paths()
    byflyt_services = [s for s in services.values() if "build" in s]
    assert byflyt_services
    for service in byflyt_services:
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (REPO / service["build"]["dockerfile"]).is_file()
        words = [w for w in service["command"] if not w.startswith("-")]
        assert any(tuple(words[: len(p)]) == p for p in known), service["command"]
        env = service["environment"]
        assert all(key.startswith("BYFLYT_") for key in env)


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    for folder in ("byflyt", "models", "connectors", "streams", "store", "samples", "reports"):
        assert f"COPY {folder} ./{folder}" in dockerfile
        assert f'"{folder}"' in pyproject
