"""The pytest fixtures of the suite, registered once here; their sources are plain
functions in ``support.py`` (and ``lifecycle_support.py``), which tests import by package
path (``codeintel_assets_tests.support``), never this file."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeintel_assets.core import registry
from codeintel_assets.runner import sigint_default
from codeintel_assets_tests.lifecycle_support import build_template, copy_root
from codeintel_assets_tests.support import materialize_repo, write_fixture_repo


@pytest.fixture(scope="session", autouse=True)
def _sigint_default():
    """A suite run as a background job (SIGINT ignored) would wait 30 s per Dagster run."""
    with sigint_default():
        yield


@pytest.fixture
def fixture_repo(tmp_path: Path) -> Path:
    """A small git repository with Python, JavaScript, TypeScript and Markdown files."""
    return write_fixture_repo(tmp_path / "fixture")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data root, exported as $CODEINTEL_DATA."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CODEINTEL_DATA", str(root))
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with the fixture repository built and published once per test module."""
    tmp = tmp_path_factory.mktemp("life")
    return build_template(tmp, write_fixture_repo(tmp / "repo"))


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    """A private copy of the template data root for one test."""
    return copy_root(template, tmp_path / "data")


@pytest.fixture
def published(fixture_repo: Path, data_dir: Path) -> str:
    """The fixture repository registered as ``fx``, built and published under ``data_dir``."""
    registry.add_repo(registry.RepoConfig(name="fx", path=str(fixture_repo)))
    assert materialize_repo("fx").success
    return "fx"


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, telemetry-free Dagster instance folder in ``$DAGSTER_HOME``."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home
