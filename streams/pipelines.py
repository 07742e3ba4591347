"""The pipelines a ``byflyt worker`` runs: each module contributes a registrar of its agents."""

from __future__ import annotations

from byflyt.streams import cycling, status, transit
from byflyt.streams.app import AgentRegistrar


def registrars() -> list[AgentRegistrar]:
    """Every pipeline's registrar, in a stable order."""
    return [cycling.register, transit.register, status.register]
