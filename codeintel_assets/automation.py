"""Declarative automation: everything downstream of `repo_manifest` follows its upstreams.

The repo-change sensor materializes a changed repository; assets with this condition
then run when a dependency's data version updates (and only then: checksum data
versions keep an unchanged upstream from triggering anything). The instance's
automation-condition sensor evaluates it (`dagster_home/dagster.yaml`).
"""

import dagster as dg

DOWNSTREAM = dg.AutomationCondition.eager()
