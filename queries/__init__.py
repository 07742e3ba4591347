"""The read side's one query layer: what the CLI, the HTTP API, the live page and the report ask.

Each rule is written once here and rendered by its caller: which kommuner a region and a
``kommune`` filter select, what a typed time range means, the record shapes of hourly values
and Europe/Oslo daily totals, flows in and out of a region, and the cycling index's records.
Callers turn a :class:`~byflyt.queries.selection.SelectionError` into their own answer (a
one-line CLI failure, a problem+json 400).
"""
