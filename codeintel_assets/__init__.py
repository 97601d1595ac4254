"""codeintel: a Dagster code location that turns repositories into a code-intelligence index."""
