"""Turning a stage result into Dagster materialization metadata."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core.stamps import StageResult

_PREVIEW_ROWS = 5
_PREVIEW_CHARS = 60
_HIDDEN_COLUMNS = {"embedding", "content"}


def materialize_result(
    result: StageResult, table_path: Path | None = None, **extra: Any
) -> dg.MaterializeResult:
    """Return a ``MaterializeResult`` with the stage's data version and rich metadata.

    With ``table_path``, adds the Parquet schema, row count and a short preview.
    """
    metadata: dict[str, Any] = {
        "codeintel/ran": dg.MetadataValue.bool(result.ran),
        "codeintel/seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "data_version": result.data_version,
    }
    for key, value in {**result.metadata, **extra}.items():
        metadata[key] = _metadata_value(key, value)
    if table_path is not None and table_path.exists():
        metadata.update(table_metadata(table_path))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(result.data_version))


def table_metadata(path: Path) -> dict[str, Any]:
    """Return schema, row count, size and a markdown preview of a Parquet file."""
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    columns = [dg.TableColumn(f.name, str(f.type)) for f in schema]
    shown = [name for name in schema.names if name not in _HIDDEN_COLUMNS]
    head = next(parquet.iter_batches(batch_size=_PREVIEW_ROWS, columns=shown), None)
    return {
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "dagster/row_count": parquet.metadata.num_rows,
        "bytes": dg.MetadataValue.int(path.stat().st_size),
        "preview": dg.MetadataValue.md(
            _markdown_preview(pa.Table.from_batches([head])) if head is not None else "(empty)"
        ),
    }


def _markdown_preview(table: pa.Table) -> str:
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in table.to_pylist():
        cells = [str(row[n]).replace("|", "\\|").replace("\n", " ")[:_PREVIEW_CHARS] for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _metadata_value(key: str, value: Any) -> Any:
    if key == "markdown":
        return dg.MetadataValue.md(value)
    if key == "plot" and Path(value).suffix == ".png" and Path(value).exists():
        encoded = base64.b64encode(Path(value).read_bytes()).decode("ascii")
        return dg.MetadataValue.md(f"![evaluation](data:image/png;base64,{encoded})")
    if key == "path":
        return dg.MetadataValue.path(value)
    if isinstance(value, bool) or value is None:
        return dg.MetadataValue.text(str(value))
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, dict | list):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.text(str(value))
