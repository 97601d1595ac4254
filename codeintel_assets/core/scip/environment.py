"""The Python environment scip-python resolves a repository's imports against.

scip-python (pyright) resolves ``import x`` to the project's own files first, then to the
standard library (typeshed's stubs, bundled with scip-python), then to the
``site-packages`` of an environment. Which environment is explicit and per repository
(``python_env`` in the registry):

* a path: that virtualenv (a folder with ``pyvenv.cfg``, or with
  ``lib/python3.X/site-packages``) — the user's own, so third-party symbols name the
  versions the user really has;
* unset: ``.venv`` or ``venv`` in the repository's root when it holds a ``pyvenv.cfg``,
  else the minimal environment;
* ``"minimal"``: no third-party packages at all (an empty ``site-packages``): imports of
  third-party packages stay unresolved, the standard library and the project's own files
  resolve as always.

Never this tool's own interpreter or site-packages: pyright is given the virtualenv
(``venvPath``/``venv``) and the Python version (``pythonVersion``), so it runs no
interpreter, and scip-python gets the package list of that environment
(``--environment``), so it runs no ``pip``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from codeintel_assets.core.checksums import xxh64_json
from codeintel_assets.core.errors import BadInputError

MINIMAL = "minimal"
DETECTED_NAMES = (".venv", "venv")
_VERSION_KEY = re.compile(r"^\s*(?:version_info|version)\s*=\s*(\d+)\.(\d+)", re.MULTILINE)
_LIB_PYTHON = re.compile(r"python(\d+)\.(\d+)")


@dataclass(frozen=True)
class PythonEnvironment:
    """The environment of one repository: where it came from, its virtualenv, its Python.

    ``source`` is ``configured``, ``detected`` or ``minimal``; ``venv`` is None for the
    minimal environment; ``python_version`` is ``X.Y``, the version pyright evaluates the
    code (and picks the standard library stubs) for.
    """

    source: str
    venv: Path | None
    python_version: str

    def site_packages(self) -> list[Path]:
        """Return the virtualenv's ``site-packages`` folders (none for the minimal one)."""
        if self.venv is None:
            return []
        # pyright looks in lib, lib64 and Lib; lib64 is usually a link to lib.
        found = [*self.venv.glob("lib*/python3*/site-packages"), self.venv / "Lib/site-packages"]
        return sorted({path.resolve() for path in found if path.is_dir()})

    def packages(self) -> list[dict[str, object]]:
        """Return the installed distributions in scip-python's ``--environment`` format:
        name, version and the ``.py``/``.pyi`` files of each, sorted by name."""
        found: dict[str, dict[str, object]] = {}
        for dist in self._distributions():
            name = dist.metadata["Name"]
            if not name or name in found:
                continue
            files = [
                str(f)
                for f in dist.files or ()
                if str(f).endswith((".py", ".pyi"))
                and not str(f).startswith("..")
                and "__pycache__" not in str(f)
            ]
            found[name] = {"name": name, "version": dist.version, "files": files}
        return sorted(found.values(), key=lambda p: str(p["name"]).lower())

    def fingerprint(self) -> dict[str, object]:
        """Return what the index depends on: the virtualenv, the Python version and the
        checksum of the installed (name, version) pairs."""
        return dict(self._fingerprint)

    @functools.cached_property
    def _fingerprint(self) -> dict[str, object]:
        installed = sorted(
            (dist.metadata["Name"] or "", dist.version) for dist in self._distributions()
        )
        return {
            "python_env": self.source,
            "venv": str(self.venv) if self.venv else None,
            "python_version": self.python_version,
            "packages": len(installed),
            "packages_xxh64": xxh64_json(installed),
        }

    def _distributions(self) -> list[importlib.metadata.Distribution]:
        paths = [str(path) for path in self.site_packages()]
        return list(importlib.metadata.distributions(path=paths)) if paths else []


def resolve_python_env(repo_root: Path, python_env: str | None) -> PythonEnvironment:
    """Return the environment scip-python uses for the repository at ``repo_root``.

    ``python_env`` is the registry's value (see the module docstring). Raises
    ``BadInputError`` naming the folder when a configured path is not a virtualenv.
    """
    if python_env == MINIMAL:
        return minimal_environment()
    if python_env is not None:
        venv = Path(python_env).expanduser()
        if not is_virtualenv(venv):
            raise BadInputError(
                f"{venv}: python_env is not a virtualenv (no pyvenv.cfg and no "
                "lib/python3.X/site-packages); give the folder of the repository's "
                f"virtualenv, or {MINIMAL!r}"
            )
        venv = venv.resolve()
        return PythonEnvironment("configured", venv, _python_version(venv))
    for name in DETECTED_NAMES:
        venv = repo_root / name
        if (venv / "pyvenv.cfg").is_file():
            return PythonEnvironment("detected", venv.resolve(), _python_version(venv))
    return minimal_environment()


def minimal_environment() -> PythonEnvironment:
    """Return the environment without third-party packages, for the running Python's version."""
    return PythonEnvironment(MINIMAL, None, f"{sys.version_info.major}.{sys.version_info.minor}")


def is_virtualenv(path: Path) -> bool:
    """Return True when ``path`` is a folder with ``pyvenv.cfg`` or a ``site-packages``."""
    if not path.is_dir():
        return False
    return (path / "pyvenv.cfg").is_file() or bool(
        PythonEnvironment("configured", path, "").site_packages()
    )


def _python_version(venv: Path) -> str:
    """Return ``X.Y`` of a virtualenv: from ``pyvenv.cfg``, else its ``lib/pythonX.Y``
    folder, else the running Python's."""
    config = venv / "pyvenv.cfg"
    if config.is_file():
        match = _VERSION_KEY.search(config.read_text(encoding="utf-8", errors="replace"))
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    for folder in sorted((venv / "lib").glob("python3*")):
        match = _LIB_PYTHON.fullmatch(folder.name)
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    return f"{sys.version_info.major}.{sys.version_info.minor}"
