"""The ``byflyt`` command line: thin adapters that parse arguments, call one function, render.

One module per command group (``query``, ``ingest``, ``gtfs``, ``regions`` …);
:mod:`.commands` assembles them into the ``byflyt`` command (:data:`app`, :func:`main`).
Nothing below the command line imports from here.
"""

from byflyt.cli.commands import app, main

__all__ = ["app", "main"]
