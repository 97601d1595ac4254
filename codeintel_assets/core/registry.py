"""The repository registry: which repositories are indexed, each one a partition.

Stored as ``repos.json`` under the data root. With nothing registered the
default repository is this project's own checkout, named after its folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codeintel_assets.core.checksums import write_json_atomic
from codeintel_assets.core.errors import (
    BadInputError,
    CodeintelError,
    RepositoryPathError,
    UnknownRepositoryError,
)
from codeintel_assets.core.layout import PROJECT_ROOT, data_root, registry_path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


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

    @property
    def root(self) -> Path:
        return Path(self.path)


def default_repo() -> RepoConfig:
    """Return the embedded default: this project's own checkout, named after its folder."""
    return RepoConfig(name=valid_repo_name(PROJECT_ROOT.name), path=str(PROJECT_ROOT))


def valid_repo_name(name: str) -> str:
    """Return ``name`` if it is usable as a partition key and folder name; raise otherwise."""
    if not _NAME.match(name) or name in {".", ".."}:
        raise CodeintelError(
            f"repository name {name!r} is not valid: use letters, digits, '_', '.', '-' (max 100)"
        )
    return name


def load_registry(root: Path | None = None) -> dict[str, RepoConfig]:
    """Return the registered repositories by name (empty when nothing is registered).

    Raises ``BadInputError`` when the registry file is not valid JSON of the expected shape.
    """
    path = registry_path(root)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {name: RepoConfig(name=name, **entry) for name, entry in raw["repos"].items()}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadInputError(f"{path}: not a valid repository registry ({exc})") from exc


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


def add_repo(config: RepoConfig, root: Path | None = None) -> RepoConfig:
    """Register (or replace) a repository; return the stored config with an absolute path.

    Raises ``RepositoryPathError`` when the path does not exist or is not a directory.
    """
    valid_repo_name(config.name)
    path = Path(config.path).expanduser()
    if not path.exists():
        raise RepositoryPathError(f"repository path {path} does not exist")
    if not path.is_dir():
        raise RepositoryPathError(f"repository path {path} is not a directory")
    stored = RepoConfig(**{**asdict(config), "path": str(path.resolve())})
    registered = load_registry(root)
    registered[stored.name] = stored
    _save(registered, root)
    return stored


def _save(registered: dict[str, RepoConfig], root: Path | None) -> None:
    payload = {
        "repos": {
            name: {k: v for k, v in asdict(cfg).items() if k != "name"}
            for name, cfg in sorted(registered.items())
        }
    }
    write_json_atomic(registry_path(root or data_root()), payload)
