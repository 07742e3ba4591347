"""The README's commands are real: every ``byflyt`` line names a command and options it has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.main import get_command

from byflyt.cli import app

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            if "byflyt " in line and not line.startswith("export"):
                words = shlex.split(line)
                start = next(i for i, w in enumerate(words) if w.endswith("byflyt"))
                commands.append(words[start + 1 :])
    return commands


def test_readme_has_the_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    assert "make demo" in text
    assert "make test" in text
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_every_readme_command_exists_with_its_options() -> None:
    commands = readme_commands()
    assert len(commands) >= 5
    root = get_command(app)
    for words in commands:
        command = root
        rest = list(words)
        while rest and getattr(command, "commands", None) is not None:
            command = command.commands[rest.pop(0)]  # KeyError names an unknown command
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=", 1)[0] in options, (words, word)
