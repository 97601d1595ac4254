"""Shared fixture sources of the tests: the small real repository they build, and a real
Dagster run of every asset of a partition. Plain functions, imported by the tests and by
``conftest.py``, which registers the pytest fixtures (once) on top of them."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import dagster as dg
import pytest

FIXTURE_FILES = {
    "pkg/__init__.py": '"""A tiny package for tests."""\n',
    "pkg/vectors.py": textwrap.dedent(
        '''\
        """Vector helpers."""

        import math


        def build_faiss_index(vectors, ids):
            """Build the faiss index over normalized vectors keyed by ids."""
            index = {}
            for vector, key in zip(vectors, ids):
                index[key] = normalize(vector)
            return index


        def normalize(vector):
            """Scale a vector to unit length."""
            norm = math.sqrt(sum(x * x for x in vector))
            return [x / norm for x in vector] if norm else vector


        class Store:
            """Keeps vectors in memory."""

            def __init__(self):
                self.items = {}

            def add(self, key, vector):
                self.items[key] = normalize(vector)

            def get(self, key):
                return self.items[key]
        '''
    ),
    "pkg/parse.py": textwrap.dedent(
        '''\
        """Parsing of configuration files."""

        import json


        def parse_config(text):
            """Parse a JSON configuration document into a dict."""
            return json.loads(text)


        def render_report(rows):
            """Render rows as a markdown table."""
            lines = ["| name | value |", "|---|---|"]
            for name, value in rows:
                lines.append(f"| {name} | {value} |")
            return "\\n".join(lines)
        '''
    ),
    "web/app.js": textwrap.dedent(
        """\
        // A small JavaScript module.
        function greet(name) {
          return `hello ${name}`;
        }

        class Counter {
          constructor() { this.count = 0; }
          increment() { this.count += 1; return this.count; }
        }

        module.exports = { greet, Counter };
        """
    ),
    "web/types.ts": textwrap.dedent(
        """\
        export interface Point { x: number; y: number }

        export function distance(a: Point, b: Point): number {
          return Math.hypot(a.x - b.x, a.y - b.y);
        }
        """
    ),
    "README.md": "# Fixture\n\nA repository used by the tests.\n\n## Usage\n\nRun it.\n",
}


def write_fixture_repo(root: Path, files: dict[str, str] | None = None, git: bool = True) -> Path:
    """Create a small real repository under ``root``; return its path."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or FIXTURE_FILES).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if git:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        }
        subprocess.run(["git", "init", "-q", str(root)], check=True, env=env)
        subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(root), "commit", "-qm", "init"], check=True, env=env)
    return root


def materialize_partition(
    name: str,
    data_root: Path | None = None,
    embedder: str = "hashing",
    instance: dg.DagsterInstance | None = None,
    faiss_flat_max: int | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize every asset and check of partition ``name`` with a real Dagster run.

    An ephemeral instance unless one is given; ``data_root`` None means $CODEINTEL_DATA;
    ``faiss_flat_max`` lowers the exact-index limit so that a small repository gets an IVF.
    """
    from codeintel_assets.checks import ALL_CHECKS
    from codeintel_assets.definitions import ALL_ASSETS
    from codeintel_assets.partitions import REPOS
    from codeintel_assets.resources import CodeintelResource

    instance = instance or dg.DagsterInstance.ephemeral()
    if name not in instance.get_dynamic_partitions(REPOS.name):
        instance.add_dynamic_partitions(REPOS.name, [name])
    settings = {} if faiss_flat_max is None else {"faiss_flat_max": faiss_flat_max}
    resource = CodeintelResource(
        data_root=str(data_root) if data_root else None, embedder=embedder, **settings
    )
    return dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        partition_key=name,
        instance=instance,
        resources={"codeintel": resource},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )


def materialize_repo(name: str, embedder: str = "hashing") -> dg.ExecuteInProcessResult:
    """Materialize partition ``name`` under ``$CODEINTEL_DATA`` (an ephemeral instance)."""
    return materialize_partition(name, embedder=embedder)


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run ``indexctl argv`` in this process; return (exit code, stdout, stderr)."""
    from codeintel_assets.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    """Assert ``err`` is exactly one `indexctl: error:` line without a traceback; return it."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("indexctl: error:"), err
    return lines[0]
