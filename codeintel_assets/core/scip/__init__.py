"""SCIP: run scip-python, decode ``index.scip`` / ``index.scip.json``, build the tables.

* ``indexer.run_scip_python`` — run the pinned indexer on a repository.
* ``decode_scip_file`` — read an index in either format into ``model.ScipIndex``
  (``wire`` decodes protobuf, ``json_reader`` reads ``scip print --json``).
* ``tables.occurrences_table`` / ``tables.symbols_table`` — the Arrow tables.
* ``symbol_names`` — the symbol grammar: kind, display name and parent of a symbol.
"""

from __future__ import annotations

from pathlib import Path

from codeintel_assets.core.scip.json_reader import read_scip_json
from codeintel_assets.core.scip.model import ScipIndex
from codeintel_assets.core.scip.wire import decode_scip_protobuf


def decode_scip_file(path: Path) -> ScipIndex:
    """Decode ``path``: ``*.json`` as ``scip print --json`` output, anything else as protobuf.

    Raises ``BadInputError`` naming the file and the place (byte offset or record path).
    """
    if path.suffix.lower() == ".json":
        return read_scip_json(path)
    return decode_scip_protobuf(path)


__all__ = ["ScipIndex", "decode_scip_file"]
