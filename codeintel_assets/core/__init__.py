"""Domain logic of codeintel. Nothing in this package imports Dagster."""
