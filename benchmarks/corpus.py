"""A real corpus for benchmarks: packages of the running Python's standard library."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

DEFAULT_PACKAGES = ("json", "email", "http", "logging", "asyncio", "unittest", "xml")


def stdlib_corpus(
    target: Path, packages: tuple[str, ...] = DEFAULT_PACKAGES, git: bool = True
) -> int:
    """Copy stdlib packages into ``target`` (a git repo when ``git``); return its line count."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    target.mkdir(parents=True, exist_ok=True)
    for name in packages:
        shutil.copytree(
            stdlib / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "test*")
        )
    if git:
        env = ["-c", "user.name=bench", "-c", "user.email=bench@local"]
        subprocess.run(["git", "init", "-q", str(target)], check=True)
        subprocess.run(["git", "-C", str(target), "add", "-A"], check=True)
        subprocess.run(["git", *env, "-C", str(target), "commit", "-qm", "corpus"], check=True)
    return sum(p.read_text(errors="replace").count("\n") for p in target.rglob("*.py"))
