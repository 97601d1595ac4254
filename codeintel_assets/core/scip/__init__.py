"""SCIP: run scip-python, decode ``index.scip`` / ``index.scip.json``, build the tables.

The data model is ``proto/scip_pb2``, generated from the vendored official ``scip.proto``
(``make scip-bindings``); both readers return its ``Index``.

* ``indexer.run_scip_python`` — run the pinned indexer on a repository.
* ``decode_scip_file`` — read an index in either format (``protobuf_reader`` splits the
  protobuf stream into records for the generated classes, ``json_reader`` reads
  ``scip print --json``); ``protobuf_reader.stream_scip_records`` yields one document at
  a time.
* ``tables.occurrences_table`` / ``tables.symbols_table`` — the Arrow tables.
* ``symbol_names`` — the symbol grammar: kind, display name and parent of a symbol.
"""

from __future__ import annotations

from pathlib import Path

from codeintel_assets.core.scip.json_reader import read_scip_json
from codeintel_assets.core.scip.proto.scip_pb2 import Index
from codeintel_assets.core.scip.protobuf_reader import read_scip_protobuf


def decode_scip_file(path: Path) -> Index:
    """Decode ``path``: ``*.json`` as ``scip print --json`` output, anything else as protobuf.

    Returns the ``scip_pb2.Index``. Raises ``BadInputError`` naming the file and the place
    (byte offset and record, or record path).
    """
    if path.suffix.lower() == ".json":
        return read_scip_json(path)
    return read_scip_protobuf(path)


__all__ = ["Index", "decode_scip_file"]
