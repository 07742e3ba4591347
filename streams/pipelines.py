"""The pipelines a ``byflyt worker`` runs: each module contributes a registrar of its agents."""

from __future__ import annotations

from byflyt.streams import cycling, fetched, status, transit
from byflyt.streams.app import AgentRegistrar


def registrars() -> list[AgentRegistrar]:
    """Every pipeline's registrar, in a stable order."""
    return [cycling.register, fetched.register, transit.register, status.register]
