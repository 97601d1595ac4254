"""Shared pieces of the service tests: the navigation fixture repository (``b.g`` called
twice by ``a.f``, ``Child(Base)``), built and published with the real pipeline, and a real
``indexctl serve`` process on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codeintel_assets.core import registry
from codeintel_assets_tests.support import materialize_partition, write_fixture_repo

NAV_FILES = {
    "pkg/__init__.py": '"""The navigation fixture."""\n',
    "pkg/a.py": (
        '"""Module a: calls into b."""\n'
        "from pkg import b\n"
        "from pkg.b import Base\n"
        "\n"
        "\n"
        "def f():\n"
        '    """Add two g values."""\n'
        "    return b.g() + b.g()\n"
        "\n"
        "\n"
        "class Child(Base):\n"
        "    def run(self, x):\n"
        "        return f()\n"
    ),
    "pkg/b.py": (
        '"""Module b: the callee."""\n'
        "\n"
        "\n"
        "def g():\n"
        '    """Return one."""\n'
        "    return 1\n"
        "\n"
        "\n"
        "class Base:\n"
        "    def run(self, x):\n"
        "        return x\n"
    ),
    "pkg/table.py": "".join(f"LIMIT_{n} = {n * 1000}  # the limit number {n}\n" for n in range(60)),
}
G_LINE = 4  # `def g():` in pkg/b.py, 1-based
INDEXCTL = str(Path(sys.executable).with_name("indexctl"))


def build_published(root: Path, data: Path, name: str = "nav") -> Path:
    """Write the fixture repository under ``root``, register it in ``data``, build and publish
    it with a real Dagster run; return the repository's path."""
    repo = write_fixture_repo(root, NAV_FILES)
    registry.add_repo(registry.RepoConfig(name=name, path=str(repo)), root=data)
    result = materialize_partition(name, data_root=data)
    assert result.success
    return repo


def service_env(data: Path, **extra: str) -> dict[str, str]:
    """The environment of a service process reading ``data``."""
    return {
        **os.environ,
        "CODEINTEL_DATA": str(data),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        **extra,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(data: Path, *args: str, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``indexctl serve`` as a real process; yield its loopback base URL."""
    port = free_port()
    process = subprocess.Popen(
        [INDEXCTL, "serve", "--host", host, "--port", str(port), *args],
        env=service_env(data),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {process.stderr.read().decode()}")
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post(url: str, path: str, payload: Any, token: str | None = None) -> tuple[int, dict]:
    """POST JSON (or raw bytes) to ``url + path``; return (status, decoded answer)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
