"""Records about the pipeline itself: rejected input and connector checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from byflyt.models.base import UtcDatetime, WireModel

MAX_RAW_CHARS = 4096


def bounded(raw: bytes | str | None, limit: int = MAX_RAW_CHARS) -> str:
    """The raw payload as text, cut to ``limit`` characters (binary shown as hex)."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = "hex:" + raw[: limit // 2].hex()
    else:
        text = raw
    return text if len(text) <= limit else text[:limit] + f"…[{len(text) - limit} more]"


class Rejected(WireModel):
    """A record that failed validation, kept with its reason in the dead-letter topic."""

    source: str
    code: str = Field(
        min_length=1,
        max_length=48,
        pattern=r"^[a-z0-9_]+$",
        description="short, bounded reason code (a metric label), e.g. invalid_json",
    )
    reason: str = Field(min_length=1, description="what is wrong, for a person")
    stage: str = Field(description="connector or agent that rejected it")
    raw: str = ""
    context: dict[str, str] = Field(default_factory=dict)
    received_at: UtcDatetime

    @classmethod
    def of(
        cls,
        source: str,
        code: str,
        reason: str,
        stage: str,
        raw: bytes | str | None = None,
        **context: str,
    ) -> Rejected:
        """A rejection stamped now, with the raw payload bounded."""
        return cls(
            source=source,
            code=code,
            reason=reason,
            stage=stage,
            raw=bounded(raw),
            context=context,
            received_at=datetime.now(UTC),
        )


class Checkpoint(WireModel):
    """How far a connector has got for one item (a point, a feed); kept in a compacted topic."""

    connector: str
    source: str
    item: str
    position: str = Field(description="opaque: a timestamp, a cursor, a requestor id")
    updated_at: UtcDatetime

    @property
    def key(self) -> str:
        """The compacted topic's key."""
        return f"{self.connector}:{self.source}:{self.item}"
