"""Checksum gates: a stage runs only when its input fingerprint changed.

Each stage of a repository records a stamp (``data/<repo>/stamps/<stage>.json``):
the fingerprint of its inputs (upstream data versions, config, code version), the
data version of its output (a content checksum) and the checksum of every output
file. A stage whose fingerprint is unchanged and whose outputs are intact does no
work and reports the same data version, so nothing downstream changes either.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codeintel_assets.core import build_warnings
from codeintel_assets.core.checksums import file_lock, write_json_atomic, xxh64_file, xxh64_json
from codeintel_assets.core.layout import ArtifactLayout, RepoLayout
from codeintel_assets.core.memory import peak_rss, release_unused

if TYPE_CHECKING:
    from codeintel_assets.core.context import BuildContext


_PROBING = contextvars.ContextVar("codeintel_stamps_probing", default=False)


class StageIsStale(Exception):
    """Raised by ``run_stage`` inside ``probing()`` for a stage that would run."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"stage {stage} is stale")
        self.stage = stage


@contextlib.contextmanager
def probing() -> Iterator[None]:
    """Within the block, ``run_stage`` builds nothing: it returns the result of a current
    stage as usual and raises ``StageIsStale`` for one that would run."""
    token = _PROBING.set(True)
    try:
        yield
    finally:
        _PROBING.reset(token)


@dataclass(frozen=True)
class StageOutput:
    """What a stage's build function returns: its data version and metadata."""

    data_version: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageResult:
    """The outcome of a stage: ran or skipped, its data version, metadata and duration."""

    stage: str
    ran: bool
    data_version: str
    metadata: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class Stage:
    """One row of the stage table (``core.stages.STAGES``): everything known of a stage.

    The Dagster assets, the fingerprints and the build order are all made from these rows.
    """

    name: str  # the asset key and the stamp's name
    inputs: tuple[str, ...]  # upstream stages: asset deps and fingerprint inputs
    code_version: str  # bump when the stage's logic changes what it writes
    run: Callable[[BuildContext, Stage], StageResult]  # gates and calls the domain code
    outputs: Callable[[ArtifactLayout], list[Path]]  # the files it writes (checksummed)
    group: str  # the layer: source, structure, retrieval, evaluation, catalog, publish
    kinds: frozenset[str] = frozenset()  # what the artifact is stored as (shown in the UI)

    def upstream(self, repo: RepoLayout) -> dict[str, str]:
        """Return the data version of each input stage ('' for one that never ran)."""
        return {name: upstream_version(repo, name) for name in self.inputs}


def read_stamp(repo: RepoLayout, stage: str) -> dict[str, Any] | None:
    """Return the stage's last stamp, or None when it never completed."""
    path = repo.stamp(stage)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def outputs_intact(repo: RepoLayout, stage: str) -> bool:
    """Return whether the stage's last stamp exists and every output it recorded is on disk
    with the recorded checksum (the outputs are the ones that build wrote, together)."""
    stamp = read_stamp(repo, stage)
    return stamp is not None and _intact(repo, stamp)


def unchanged_outputs(
    repo: RepoLayout, stage: Stage, data_version: str, paths: Iterable[Path]
) -> bool:
    """Return whether the stage's last build, made by this code version, recorded
    ``data_version`` and left ``paths`` intact: a build whose data came out the same may then
    keep those files instead of writing the same bytes again (their checksums, not their
    times, are what readers and the stamp see)."""
    stamp = read_stamp(repo, stage.name)
    if (
        stamp is None
        or stamp.get("code_version") != stage.code_version
        or stamp.get("data_version") != data_version
    ):
        return False
    recorded = stamp.get("outputs", {})
    for path in paths:
        checksum = recorded.get(_stamp_key(repo, path))
        if checksum is None or not path.exists() or xxh64_file(path) != checksum:
            return False
    return True


def upstream_version(repo: RepoLayout, stage: str) -> str:
    """Return the data version recorded by an upstream stage ('' when it never ran)."""
    stamp = read_stamp(repo, stage)
    return stamp["data_version"] if stamp else ""


def fingerprint(stage: Stage, upstream: dict[str, str], config: dict[str, Any]) -> str:
    """Return the input fingerprint of a stage: code version, upstream versions, config."""
    return xxh64_json(
        {"stage": stage.name, "code": stage.code_version, "up": upstream, "cfg": config}
    )


def run_stage(
    ctx: BuildContext,
    stage: Stage,
    config: dict[str, Any],
    build: Callable[[], StageOutput],
    force: bool = False,
) -> StageResult:
    """Run ``build`` unless the stamp shows the same inputs (``stage.inputs``' data versions,
    ``config``, the code version) and intact outputs.

    The stage's peak resident memory (``core.memory.peak_rss``: this process and its
    children, ``peak_rss_mib``...) and its warnings (``core.build_warnings``:
    ``warning_count``, ``warnings``) join the metadata of a stage that ran.
    The stamp is written only after ``build`` returned, so a crash leaves the old
    stamp (or none) and the next run redoes the work; temporary files a killed writer
    left beside the outputs are removed first. The stage's lock is held throughout:
    two runs of one partition at once (``indexctl build`` and ``dagster asset
    materialize``, say) never write a stage together — the second waits, then finds
    the stamp current and skips.
    """
    with stage_lock(ctx.layout, stage.name):
        return _run_stage_locked(ctx, stage, config, build, force)


@contextlib.contextmanager
def stage_lock(repo: RepoLayout, stage: str) -> Iterator[None]:
    """Hold one stage's lock of a repository, waiting for it (``flock``, released if we die)."""
    with file_lock(repo.stage_lock(stage)):
        yield


def _run_stage_locked(
    ctx: BuildContext,
    stage: Stage,
    config: dict[str, Any],
    build: Callable[[], StageOutput],
    force: bool,
) -> StageResult:
    started = time.perf_counter()
    repo = ctx.layout
    input_fingerprint = fingerprint(stage, stage.upstream(repo), config)
    outputs = stage.outputs(repo.build)
    stamp = read_stamp(repo, stage.name)
    if (
        not force
        and stamp
        and stamp.get("fingerprint") == input_fingerprint
        and _intact(repo, stamp)
    ):
        return StageResult(
            stage.name,
            False,
            stamp["data_version"],
            stamp.get("metadata", {}),
            time.perf_counter() - started,
        )
    if _PROBING.get():
        raise StageIsStale(stage.name)
    remove_stale_temp_files(outputs)
    with peak_rss() as memory, build_warnings.collecting() as warned:
        output = build()
    release_unused()
    metadata = {**output.metadata, **memory.metadata(), **build_warnings.metadata(warned)}
    # Relative to the repository folder, so a data root can be moved or copied whole.
    checksums = {_stamp_key(repo, p): xxh64_file(p) for p in outputs if p.exists()}
    write_json_atomic(
        repo.stamp(stage.name),
        {
            "fingerprint": input_fingerprint,
            "code_version": stage.code_version,
            "data_version": output.data_version,
            "outputs": checksums,
            "metadata": metadata,
        },
    )
    return StageResult(
        stage.name, True, output.data_version, metadata, time.perf_counter() - started
    )


def remove_stale_temp_files(outputs: list[Path]) -> list[Path]:
    """Delete the temporary files (``.<name>.*.tmp``, see ``checksums.atomic_path``) that a
    killed writer left beside ``outputs``; return them."""
    stale = []
    for output in outputs:
        if output.parent.is_dir():
            stale += [p for p in output.parent.glob(f".{output.name}.*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _stamp_key(repo: RepoLayout, path: Path) -> str:
    return (
        path.relative_to(repo.repo_dir).as_posix()
        if path.is_relative_to(repo.repo_dir)
        else str(path)
    )


def _intact(repo: RepoLayout, stamp: dict[str, Any]) -> bool:
    for path, checksum in stamp.get("outputs", {}).items():
        # Older stamps hold absolute paths; joining keeps those as they are.
        target = repo.repo_dir / path
        if not target.exists() or xxh64_file(target) != checksum:
            return False
    return True
