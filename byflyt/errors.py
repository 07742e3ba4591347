"""The error taxonomy every part of byflyt uses.

Three kinds, each with one way of handling it:

* :class:`ConfigError`: wrong configuration; the process stops at start-up with one line that
  names the setting and what to fix.
* :class:`RetriableError`: a timeout, a 429 or a 5xx; the caller backs off and tries again.
* :class:`RejectedInput`: a record that cannot be used; it goes to the dead-letter topic with
  its reason and the stream goes on (:class:`BrokenRule`: one item of a source's answer, with
  the rule it breaks).
"""

from __future__ import annotations


class ByflytError(Exception):
    """Base class of byflyt's own errors."""


class ConfigError(ByflytError):
    """Configuration that cannot work; the message says which setting and what to fix."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting = setting
        self.problem = problem
        self.fix = fix
        super().__init__(f"{setting}: {problem} (fix: {fix})")


class RetriableError(ByflytError):
    """A transient failure talking to a source or a service; try again after a back-off."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class RejectedInput(ByflytError):
    """Input that fails validation; it belongs in the dead-letter topic, with ``reason``."""

    def __init__(self, reason: str, *, source: str, raw: bytes | str | None = None) -> None:
        self.reason = reason
        self.source = source
        self.raw = raw
        super().__init__(f"{source}: {reason}")


class BrokenRule(ByflytError):
    """One item of an answer (a journey, a trip update) breaks a rule of its source.

    ``rule`` is a bounded label (metrics, the dead letter's context), ``reason`` says what is
    wrong with this item; the connector sends the item to the dead-letter topic and goes on.
    """

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(reason)


class BrokerError(ByflytError):
    """The local Kafka broker could not be started, stopped or reached."""
