"""The code-intelligence service: warm per-version handles and one set of read-only tools.

``handles`` opens each repository's published version once (FAISS, BM25, catalog, the
embedding model) and swaps to the new version when ``current`` flips; ``tools`` holds
the tool functions, their JSON schemas and descriptions, used alike by the HTTP API,
the MCP server and the CLI; ``navigation`` answers the structural questions from the
catalog; ``freshness`` compares the work tree with the indexed manifest.
"""
