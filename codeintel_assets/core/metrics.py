"""Prometheus metrics of the catalog and the service, when ``prometheus_client`` is installed.

The dependency is optional: without it every ``record_*`` function is a no-op and
``metrics_text()`` returns an empty string. Metrics live in a registry of their own,
so importing this module twice (tests, reloads) never registers a metric twice in the
process-wide default registry.
"""

from __future__ import annotations

try:
    import prometheus_client
except ImportError:  # optional dependency
    prometheus_client = None

if prometheus_client is not None:
    REGISTRY = prometheus_client.CollectorRegistry()
    _FILTER_QUERIES = prometheus_client.Counter(
        "codeintel_catalog_filter_queries",
        "Catalog queries by filter type (combined|glob|language|none).",
        ["filter_type"],
        registry=REGISTRY,
    )
    _VIEW_BOOTSTRAP = prometheus_client.Histogram(
        "codeintel_catalog_view_bootstrap_seconds",
        "Time to create every catalog view (ensure_views).",
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        registry=REGISTRY,
    )
    _TOOL_CALLS = prometheus_client.Histogram(
        "codeintel_tool_call_seconds",
        "Latency of service tool calls by tool and outcome (ok|error).",
        ["tool", "outcome"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        registry=REGISTRY,
    )
    _HANDLE_SWAPS = prometheus_client.Counter(
        "codeintel_handle_swaps",
        "Times the service swapped to a newly published (or rolled back) version.",
        ["repo"],
        registry=REGISTRY,
    )
else:
    REGISTRY = None


def metrics_available() -> bool:
    """Return True when ``prometheus_client`` is importable."""
    return prometheus_client is not None


def record_filter_query(filter_type: str) -> None:
    """Count one catalog query with the given filter-type label."""
    if prometheus_client is not None:
        _FILTER_QUERIES.labels(filter_type=filter_type).inc()


def observe_view_bootstrap(seconds: float) -> None:
    """Record the latency of one view bootstrap."""
    if prometheus_client is not None:
        _VIEW_BOOTSTRAP.observe(seconds)


def observe_tool_call(tool: str, outcome: str, seconds: float) -> None:
    """Record one service tool call (``outcome`` is ``ok`` or ``error``)."""
    if prometheus_client is not None:
        _TOOL_CALLS.labels(tool=tool, outcome=outcome).observe(seconds)


def record_handle_swap(repo: str) -> None:
    """Count one swap of the service to a new version of ``repo``."""
    if prometheus_client is not None:
        _HANDLE_SWAPS.labels(repo=repo).inc()


def metrics_text() -> str:
    """Return the metrics in Prometheus text format ('' without ``prometheus_client``)."""
    if prometheus_client is None:
        return ""
    return prometheus_client.generate_latest(REGISTRY).decode("utf-8")
