"""Reading JSON Lines inputs (``queries.jsonl``, ``modules.jsonl``) with errors that name
the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codeintel_assets.core.errors import BadInputError


def jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for every non-blank line of ``path``.

    Raises ``BadInputError`` naming the file (and line) when it cannot be read as UTF-8,
    a line is not valid JSON, or a line is not a JSON object.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot be read as UTF-8 text: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}: line {number}: invalid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise BadInputError(f"{path}: line {number}: expected a JSON object")
        yield number, record
