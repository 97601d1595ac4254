"""Warnings of a stage that go on: something was not used as it is (a damaged cache, a
vector matrix that no longer matches its table) and the stage worked around it.

``warn`` issues a Python warning (printed, and logged by Dagster's run) and records the
message for the stage running in this context: ``core.stamps.run_stage`` collects them
into the stage's metadata (``warning_count`` and the messages, ``warnings``), so a build
that recovered from bad input says so where its figures are read. A context variable, not
``warnings.catch_warnings`` (process-wide state), so stages of concurrent builds in one
process keep their own.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from contextvars import ContextVar

# Messages kept in a stage's metadata; the count covers every warning.
MAX_KEPT = 20

_collected: ContextVar[list[str] | None] = ContextVar("codeintel_build_warnings", default=None)


class BuildWarning(UserWarning):
    """A stage worked around bad or stale input; the message names the file and the reason."""


def warn(message: str) -> None:
    """Issue ``message`` as a ``BuildWarning`` and record it for the running stage."""
    found = _collected.get()
    if found is not None:
        found.append(message)
    warnings.warn(message, BuildWarning, stacklevel=2)


@contextlib.contextmanager
def collecting() -> Iterator[list[str]]:
    """Record the messages ``warn`` issues in this context; yield their list."""
    found: list[str] = []
    token = _collected.set(found)
    try:
        yield found
    finally:
        _collected.reset(token)


def metadata(found: list[str]) -> dict[str, object]:
    """Return a stage's metadata of its warnings: the count, and the first ``MAX_KEPT``."""
    if not found:
        return {"warning_count": 0}
    return {"warning_count": len(found), "warnings": found[:MAX_KEPT]}
