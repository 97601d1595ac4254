"""Running git: the one place the project starts a git process.

Always ``git -C <root> ...`` without a shell, in the C locale (messages are parsed, so
they must not be translated), with a timeout.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 120


def run_git(
    root: Path, *args: str, timeout_s: float = GIT_TIMEOUT_S
) -> subprocess.CompletedProcess[bytes] | None:
    """Return the finished ``git -C root args...`` (stdout and stderr as bytes), or None
    when git is missing, exits non-zero or takes longer than ``timeout_s``."""
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            check=True,
            timeout=timeout_s,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
