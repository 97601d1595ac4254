"""The one exception family for problems a user can fix.

The CLI prints the message of a ``CodeintelError`` on one line and exits non-zero
without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CodeintelError(Exception):
    """A user-facing error: the message names the thing and the reason."""


class UnknownRepositoryError(CodeintelError):
    """A repository name that is not registered."""


class RepositoryExistsError(CodeintelError):
    """A registration that would silently replace another one of the same name."""


class RepositoryPathError(CodeintelError):
    """A repository path that does not exist or is not a directory."""


class NothingIndexableError(CodeintelError):
    """A repository selection (path, globs, size limit) that leaves no file to index."""


class NothingPublishedError(CodeintelError):
    """A read of the published index before anything was published."""


class EmptyQueryError(CodeintelError):
    """A search query that is empty or only whitespace."""


class BadInputError(CodeintelError):
    """An input file (SCIP, JSON, TSV...) that is malformed; the message names file and place."""


class PublishError(CodeintelError):
    """A publish, rollback or stage that cannot proceed (validation failed, lock held...)."""
