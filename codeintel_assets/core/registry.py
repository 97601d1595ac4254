"""The repository registry: which repositories are indexed, each one a partition.

Stored as ``repos.json`` under the data root. With nothing registered the
default repository is this project's own checkout, named after its folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codeintel_assets.core.checksums import file_lock, write_json_atomic
from codeintel_assets.core.errors import (
    BadInputError,
    CodeintelError,
    RepositoryExistsError,
    RepositoryPathError,
    UnknownRepositoryError,
)
from codeintel_assets.core.layout import PROJECT_ROOT, data_root, registry_lock_path, registry_path
from codeintel_assets.core.pathfilter import PathFilter
from codeintel_assets.core.scip.environment import MINIMAL, resolve_python_env

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# The JSON type each registry field must have (None allowed where the default is None).
_FIELD_TYPES = {
    "path": str,
    "include": list,
    "exclude": list,
    "max_file_bytes": int,
    "scip_index": str,
    "modules_jsonl": str,
    "symbol_graph_json": str,
    "python_env": str,
}


@dataclass(frozen=True)
class RepoConfig:
    """One registered repository and how its files are selected."""

    name: str
    path: str
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    max_file_bytes: int = 1 << 20
    # Externally produced artifacts to ingest instead of deriving them.
    scip_index: str | None = None
    modules_jsonl: str | None = None
    symbol_graph_json: str | None = None
    # The virtualenv scip-python resolves third-party imports against (a path, or
    # "minimal"); None: the repository's own .venv/venv if it has one, else minimal.
    python_env: str | None = None

    @property
    def root(self) -> Path:
        return Path(self.path)


def default_repo() -> RepoConfig:
    """Return the embedded default: this project's own checkout, named after its folder."""
    return RepoConfig(name=valid_repo_name(PROJECT_ROOT.name), path=str(PROJECT_ROOT))


def valid_repo_name(name: str) -> str:
    """Return ``name`` if it is usable as a partition key and folder name; raise otherwise."""
    # fullmatch: `$` would let a trailing newline through.
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in {".", ".."}:
        raise CodeintelError(
            f"repository name {name!r} is not valid: use letters, digits, '_', '.', '-' (max 100)"
        )
    return name


def load_registry(root: Path | None = None) -> dict[str, RepoConfig]:
    """Return the registered repositories by name (empty when nothing is registered).

    Raises ``BadInputError`` naming the file, the repository and the field when the
    registry is not valid JSON of the expected shape and types.
    """
    path = registry_path(root)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a valid repository registry ({exc})") from exc
    repos = raw.get("repos") if isinstance(raw, dict) else None
    if not isinstance(repos, dict):
        raise BadInputError(f'{path}: expected an object {{"repos": {{name: {{...}}}}}}')
    return {name: _entry(path, name, entry) for name, entry in repos.items()}


def _entry(path: Path, name: str, entry: object) -> RepoConfig:
    """Return one registry entry as a ``RepoConfig``; raise ``BadInputError`` if malformed."""
    where = f"{path}: repository {name!r}"
    if not isinstance(entry, dict):
        raise BadInputError(f"{where}: expected an object, got {type(entry).__name__}")
    try:
        valid_repo_name(name)
    except CodeintelError as exc:
        raise BadInputError(f"{path}: {exc}") from exc
    if "path" not in entry:
        raise BadInputError(f"{where}: field 'path' is missing")
    for key, value in entry.items():
        expected = _FIELD_TYPES.get(key)
        if expected is None:
            raise BadInputError(f"{where}: unknown field {key!r}")
        nullable = key not in {"path", "include", "exclude", "max_file_bytes"}
        if value is None and nullable:
            continue
        if not isinstance(value, expected) or isinstance(value, bool):
            raise BadInputError(
                f"{where}: field {key!r} must be {expected.__name__}, got {type(value).__name__}"
            )
        if expected is list and not all(isinstance(item, str) for item in value):
            raise BadInputError(f"{where}: field {key!r} must be a list of strings")
    return RepoConfig(name=name, **entry)


def list_repos(root: Path | None = None) -> list[RepoConfig]:
    """Return the registered repositories, or the default one when none is registered."""
    registered = load_registry(root)
    return list(registered.values()) if registered else [default_repo()]


def get_repo(name: str | None, root: Path | None = None) -> RepoConfig:
    """Return the repository called ``name`` (the default one when ``name`` is None).

    Raises ``UnknownRepositoryError`` naming the repository when it is not registered.
    """
    default = default_repo()
    if name is None or name == default.name and name not in load_registry(root):
        return default
    registered = load_registry(root)
    if name not in registered:
        known = ", ".join(sorted(registered)) or default.name
        raise UnknownRepositoryError(
            f"repository {name!r} is not registered (known: {known}); "
            "add it with `indexctl repo add NAME PATH`"
        )
    return registered[name]


def add_repo(config: RepoConfig, root: Path | None = None, replace: bool = False) -> RepoConfig:
    """Register a repository; return the stored config with absolute paths.

    Registering a name again with the same settings changes nothing; with other
    settings it needs ``replace``. Raises ``RepositoryPathError`` when the path does
    not exist or is not a directory, ``BadInputError`` for a given artifact that is not
    a file, a bad glob or a non-positive size limit, ``RepositoryExistsError`` for a
    different registration of the name without ``replace``. Concurrent registrations
    are serialized by a lock, so none is lost.
    """
    stored = _checked(config)
    with registry_lock(root):
        registered = load_registry(root)
        existing = registered.get(stored.name)
        if existing == stored:
            return stored
        if existing is not None and not replace:
            raise RepositoryExistsError(
                f"repository {stored.name!r} is already registered with path {existing.path} "
                "and other settings; pass --replace to change it"
            )
        registered[stored.name] = stored
        _save(registered, root)
    return stored


def _checked(config: RepoConfig) -> RepoConfig:
    """Return ``config`` validated, with its path and given artifacts made absolute."""
    valid_repo_name(config.name)
    path = Path(config.path).expanduser()
    if not path.exists():
        raise RepositoryPathError(f"repository path {path} does not exist")
    if not path.is_dir():
        raise RepositoryPathError(f"repository path {path} is not a directory")
    if config.max_file_bytes < 1:
        raise BadInputError(f"--max-file-bytes must be at least 1 (got {config.max_file_bytes})")
    PathFilter.from_globs(config.include, config.exclude)
    given = {}
    for key in ("scip_index", "modules_jsonl", "symbol_graph_json"):
        value = getattr(config, key)
        if value is None:
            continue
        artifact = Path(value).expanduser()
        if not artifact.is_file():
            raise BadInputError(f"{artifact}: {key} given for {config.name!r} is not a file")
        # Absolute now: a relative path would depend on where `build` is run from.
        given[key] = str(artifact.resolve())
    if config.python_env is not None:
        given["python_env"] = _checked_python_env(config.python_env)
    return dataclasses.replace(config, path=str(path.resolve()), **given)


def _checked_python_env(python_env: str) -> str:
    """Return ``python_env`` with a virtualenv path made absolute; raise ``BadInputError``
    when it is neither ``minimal`` nor a virtualenv."""
    if python_env == MINIMAL:
        return python_env
    environment = resolve_python_env(Path("."), python_env)
    return str(environment.venv)


@contextlib.contextmanager
def registry_lock(root: Path | None = None) -> Iterator[None]:
    """Hold the registry's lock for a read-modify-write (``flock``, released if we die).

    Blocks until the lock is free. Also held by whoever must not race another
    registration (e.g. creating the Dagster instance's storage for a new partition).
    """
    with file_lock(registry_lock_path(root or data_root())):
        yield


def _save(registered: dict[str, RepoConfig], root: Path | None) -> None:
    payload = {
        "repos": {
            name: {k: v for k, v in asdict(cfg).items() if k != "name"}
            for name, cfg in sorted(registered.items())
        }
    }
    write_json_atomic(registry_path(root or data_root()), payload)
