"""Prometheus metrics of the catalog, when ``prometheus_client`` is installed.

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


def metrics_text() -> str:
    """Return the metrics in Prometheus text format ('' without ``prometheus_client``)."""
    if prometheus_client is None:
        return ""
    return prometheus_client.generate_latest(REGISTRY).decode("utf-8")
