"""A real corpus for benchmarks: packages of the running Python's standard library."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
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
