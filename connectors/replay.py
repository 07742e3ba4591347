"""Recorded answers read back as snapshots: the one replay reader of the transit feeds.

``byflyt ingest gtfs-rt --replay DIR`` plays recorded ``*.pb`` snapshots and ``byflyt ingest
siri-et|siri-vm --replay DIR`` recorded ``*.xml`` answers: every file with the suffix, in name
order, one a poll (``--polls N``: the first N), read into memory when the connector is built so
that a folder that cannot be read fails at start-up with one line naming ``--replay``.
"""

from __future__ import annotations

from pathlib import Path

from byflyt.errors import ConfigError


def read_replay(folder: Path, suffix: str, polls: int | None = None) -> list[tuple[Path, bytes]]:
    """Each recorded file (``*{suffix}``) in ``folder``, in name order, with its bytes.

    Raises :class:`~byflyt.errors.ConfigError` (``--replay``) for a folder that cannot be read,
    that holds no such file, or whose files cannot be read.
    """
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == suffix and p.is_file())
    except OSError as exc:
        raise ConfigError(
            "--replay",
            f"cannot read folder {folder}: {exc.strerror or exc}",
            f"give a folder of *{suffix} files",
        ) from exc
    if not files:
        raise ConfigError(
            "--replay", f"{folder} has no *{suffix} files", "give a folder of recorded answers"
        )
    try:
        return [(path, path.read_bytes()) for path in files[:polls]]
    except OSError as exc:
        raise ConfigError(
            "--replay",
            f"cannot read {exc.filename}: {exc.strerror}",
            "check the files' permissions",
        ) from exc
