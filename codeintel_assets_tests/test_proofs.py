"""Proofs of passed checks: publishing the files a build's checks passed takes their proofs
instead of running the checks again; a file that differs in any byte is checked afresh."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from codeintel_assets.core import lifecycle
from codeintel_assets.core import validation as v
from codeintel_assets.core.catalog import build_catalog
from codeintel_assets.core.checksums import atomic_path
from codeintel_assets.core.errors import PublishError
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets_tests.lifecycle_support import NAME, context, new_build

pytestmark = pytest.mark.integration


def test_the_builds_checks_leave_proofs_that_publishing_takes(root: Path):
    layout = RepoLayout(root, NAME)
    # The copied catalog's views read the template's files: a catalog of this root's.
    assert (
        v.proof_inputs(v.check_faiss_round_trip, layout.build)["catalog_definitions"]
        != (
            json.loads((layout.proofs_dir / "check_faiss_round_trip.json").read_text())["inputs"][
                "catalog_definitions"
            ]
        )
    )
    build_catalog(layout.build)
    for check in v.PROVEN_CHECKS:
        proof = json.loads((layout.proofs_dir / f"{check.__name__}.json").read_text())
        assert proof["passed"] is True
        assert proof["inputs"] == v.proof_inputs(check, layout.build)
    new_build(root, "proved")
    outcome = lifecycle.publish_build(context(root))
    version = layout.version(outcome.build_version)
    for check in v.PROVEN_CHECKS:
        # The version's own files (copies here) and catalog, with the build's checksums.
        taken = v.run_proven(check, version, layout.proofs_dir)
        assert taken.passed and taken.metadata["proved_before"] is True
        assert "proved on files of the same checksums" in taken.detail
        assert v.run_proven(check, version, None).passed  # and a run agrees


def drop_occurrences(layout: RepoLayout) -> None:
    """Rewrite the build's SCIP occurrences without their first half (by rename, as a build
    writes), so chunk symbols lose the occurrences they were made from."""
    path = layout.build.scip_occurrences
    table = pq.read_table(path)
    with atomic_path(path) as tmp:
        pq.write_table(table.slice(table.num_rows // 2), tmp)


def test_a_changed_input_is_checked_again_and_caught(root: Path):
    layout = RepoLayout(root, NAME)
    before = lifecycle.current_version_or_none(layout)
    drop_occurrences(layout)
    build_catalog(layout.build)
    outcome = v.run_proven(v.check_chunk_symbols_in_occurrences, layout.build, layout.proofs_dir)
    assert not outcome.passed and "proved_before" not in outcome.metadata
    proof = json.loads((layout.proofs_dir / "check_chunk_symbols_in_occurrences.json").read_text())
    assert proof["inputs"] != v.proof_inputs(v.check_chunk_symbols_in_occurrences, layout.build)
    with pytest.raises(PublishError, match="chunk_symbols_in_scip"):
        lifecycle.publish_build(context(root))
    assert lifecycle.current_version_or_none(layout) == before


def test_a_damaged_proof_is_no_proof(root: Path):
    layout = RepoLayout(root, NAME)
    build_catalog(layout.build)
    path = layout.proofs_dir / "check_faiss_round_trip.json"
    proof = json.loads(path.read_text())
    for damaged in ("not json", json.dumps({**proof, "passed": False}), json.dumps([proof])):
        path.write_text(damaged)
        outcome = v.run_proven(v.check_faiss_round_trip, layout.build, layout.proofs_dir)
        assert outcome.passed and "proved_before" not in outcome.metadata
    # The run left a proof again.
    assert json.loads(path.read_text())["inputs"] == proof["inputs"]
