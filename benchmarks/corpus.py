"""A real corpus for benchmarks: packages of the running Python's standard library."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

import numpy as np

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


def jittered_copies(real: np.ndarray, count: int, sigma: float, seed: int = 0) -> np.ndarray:
    """Return ``count`` unit vectors: the real chunk vectors repeated, each copy jittered.

    Copies of real embeddings keep the model's uneven, clumpy distribution, which is
    what makes IVF lose recall; Gaussian noise of ``sigma`` per dimension makes every
    copy distinct (cosine to its source ≈ 1 / sqrt(1 + sigma² · dim)).
    """
    rng = np.random.default_rng(seed)
    x = real[np.arange(count) % len(real)] + rng.normal(scale=sigma, size=(count, real.shape[1]))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def edit_one_function(root: Path) -> str:
    """Insert one statement into the first multi-statement function of the corpus (files
    that are not UTF-8 Python, as some of the standard library's test data, are skipped)."""
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and len(node.body) >= 2:
                lines = text.splitlines(keepends=True)
                target = node.body[1]
                indent = lines[target.lineno - 1][: target.col_offset]
                lines.insert(target.lineno - 1, f"{indent}_bench_edit = {time.time_ns()}\n")
                path.write_text("".join(lines), encoding="utf-8")
                return f"{path.relative_to(root)}:{node.name}"
    raise SystemExit("no function to edit")
