"""Python bindings generated from the vendored ``scip.proto`` (see ``README.md`` here).

``scip_pb2`` is protoc output: do not edit it; regenerate it with ``make scip-bindings``.
"""
