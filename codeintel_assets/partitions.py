"""One dynamic partition per registered repository."""

import dagster as dg

REPOS = dg.DynamicPartitionsDefinition(name="repos")
