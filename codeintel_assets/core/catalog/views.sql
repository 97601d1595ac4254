-- Derived views of the codeintel catalog (SPEC §6).
--
-- The source views they read (chunks, faiss_idmap, modules, symbol_edges,
-- scip_occurrences, scip_symbols, ast_nodes, cst_nodes, node_to_chunk,
-- repo_manifest, last_eval_pool) are registered first by catalog.py over the
-- ABSOLUTE paths of one artifact layout, so nothing here depends on the
-- reader's working directory. Statements run in file order; each starts with
-- "-- view: <name>" (or "-- macro: <name>", a table macro the views and the
-- query API call) and "-- sources: <source views>", then one comment line
-- saying what it is.
-- Line columns: chunk lines are 1-based inclusive; scip_occurrences keep
-- SCIP's 0-based lines (v_scip_defs adds a 1-based `line`).

-- macro: uri_modules
-- sources: modules
-- The rule that attributes a uri to a module, in one place: for each distinct uri of the list uri_list, the module with the LONGEST uri_prefix that prefixes it (ties: smallest module_id); a uri no prefix matches gives no row.
CREATE OR REPLACE MACRO uri_modules(uri_list) AS TABLE
SELECT u.uri, m.module_id, m.language
FROM (SELECT DISTINCT unnest(uri_list) AS uri) AS u
JOIN modules AS m ON starts_with(u.uri, m.uri_prefix)
QUALIFY row_number() OVER (
    PARTITION BY u.uri ORDER BY length(m.uri_prefix) DESC, m.module_id
) = 1;

-- view: v_chunks
-- sources: chunks
-- Every chunk column, with symbols ([] instead of NULL) and content_hash ('' instead of NULL) coalesced.
CREATE OR REPLACE VIEW v_chunks AS
SELECT
    id,
    uri,
    start_line,
    end_line,
    start_byte,
    end_byte,
    preview,
    content,
    lang,
    coalesce(content_hash, '') AS content_hash,
    coalesce(symbols, []::VARCHAR[]) AS symbols,
    kind,
    name,
    token_count,
    embedding
FROM chunks;

-- view: v_chunk_min
-- sources: chunks
-- The slim columns a search result list needs (no content, no embedding).
CREATE OR REPLACE VIEW v_chunk_min AS
SELECT id, uri, lang, preview
FROM chunks;

-- view: v_faiss_join
-- sources: faiss_idmap, chunks
-- Every FAISS id-map row with the chunk it points at (chunk columns NULL when the id is unknown).
CREATE OR REPLACE VIEW v_faiss_join AS
SELECT
    f.index_name,
    f.faiss_id,
    f.faiss_row,
    f.build_version,
    c.id AS chunk_id,
    c.uri,
    c.start_line,
    c.end_line,
    c.lang,
    c.preview,
    c.content_hash,
    c.symbols
FROM faiss_idmap AS f
LEFT JOIN v_chunks AS c ON c.id = f.faiss_id;

-- view: v_chunk_symbols
-- sources: chunks
-- One row per (chunk, SCIP symbol defined or referenced in its range).
CREATE OR REPLACE VIEW v_chunk_symbols AS
SELECT id AS chunk_id, unnest(symbols) AS symbol
FROM v_chunks;

-- view: v_chunk_modules
-- sources: chunks, modules
-- Exactly one row per chunk: its module by uri_modules (the longest uri_prefix; NULL module when none, the chunk's lang as language then).
CREATE OR REPLACE VIEW v_chunk_modules AS
SELECT
    c.id AS chunk_id,
    c.uri,
    um.module_id,
    coalesce(um.language, c.lang) AS language
FROM v_chunk_min AS c
LEFT JOIN uri_modules((SELECT list(DISTINCT uri) FROM v_chunk_min)) AS um ON um.uri = c.uri;

-- view: v_scip_defs
-- sources: scip_occurrences
-- SCIP definition occurrences (0-based SCIP ranges) plus `line`, the 1-based line comparable with chunk lines.
CREATE OR REPLACE VIEW v_scip_defs AS
SELECT
    symbol,
    uri,
    start_line,
    start_char,
    end_line,
    end_char,
    enclosing_start_line,
    enclosing_end_line,
    start_line + 1 AS line
FROM scip_occurrences
WHERE role = 'def';

-- view: v_symbol_neighbors
-- sources: symbol_edges, modules
-- Symbol graph edges with the module of each end (uri_modules: the longest prefix) and whether the edge crosses modules.
CREATE OR REPLACE VIEW v_symbol_neighbors AS
WITH uri_module AS (
    SELECT *
    FROM uri_modules((
        SELECT list_concat(list(DISTINCT src_uri), list(DISTINCT dst_uri)) FROM symbol_edges
    ))
)
SELECT
    e.src_symbol,
    e.dst_symbol,
    e.edge,
    e.weight,
    e.src_uri,
    e.dst_uri,
    sm.module_id AS src_module_id,
    dm.module_id AS dst_module_id,
    sm.module_id IS DISTINCT FROM dm.module_id AS crosses_module
FROM symbol_edges AS e
LEFT JOIN uri_module AS sm ON sm.uri = e.src_uri
LEFT JOIN uri_module AS dm ON dm.uri = e.dst_uri;

-- view: v_module_coverage
-- sources: modules, chunks, faiss_idmap
-- Per module: chunks assigned to it (longest prefix), how many are in the FAISS id map, and the ratio.
CREATE OR REPLACE VIEW v_module_coverage AS
WITH indexed AS (
    SELECT DISTINCT faiss_id FROM faiss_idmap
)
SELECT
    m.module_id,
    m.uri_prefix,
    m.language,
    count(cm.chunk_id) AS chunks_total,
    count(i.faiss_id) AS chunks_indexed,
    CASE
        WHEN count(cm.chunk_id) = 0 THEN NULL
        ELSE count(i.faiss_id) / count(cm.chunk_id)
    END AS coverage
FROM modules AS m
LEFT JOIN v_chunk_modules AS cm ON cm.module_id = m.module_id
LEFT JOIN indexed AS i ON i.faiss_id = cm.chunk_id
GROUP BY m.module_id, m.uri_prefix, m.language;

-- view: v_rrf_contrib_by_channel
-- sources: last_eval_pool
-- Per query and channel (source) of the last evaluation pool: hits and the reciprocal-rank-fusion contribution sum(1/(60+rank)).
CREATE OR REPLACE VIEW v_rrf_contrib_by_channel AS
SELECT
    query_id,
    source,
    count(*) AS hits,
    sum(1.0 / (60 + rank)) AS rrf_contrib
FROM last_eval_pool
GROUP BY query_id, source;

-- view: v_units
-- sources: units
-- Every unit search ranks (a definition, or a module block of top-level code); lines 1-based inclusive.
CREATE OR REPLACE VIEW v_units AS
SELECT
    u.unit_id,
    u.uri,
    u.start_line,
    u.end_line,
    u.start_byte,
    u.end_byte,
    u.kind,
    u.name,
    u.qualified_name,
    u.parent_unit_id,
    u.lang
FROM units AS u;

-- view: v_chunk_units
-- sources: chunk_units, chunks, units
-- Each chunk's innermost unit (exactly one per chunk), with both spans.
CREATE OR REPLACE VIEW v_chunk_units AS
SELECT
    cu.chunk_id,
    cu.unit_id,
    c.uri,
    c.start_line AS chunk_start_line,
    c.end_line AS chunk_end_line,
    u.start_line AS unit_start_line,
    u.end_line AS unit_end_line,
    u.kind,
    u.qualified_name
FROM chunk_units AS cu
JOIN chunks AS c ON c.id = cu.chunk_id
JOIN units AS u ON u.unit_id = cu.unit_id;

-- view: definitions
-- sources: units
-- The named definitions among the units (what the definition channel of search matches; the kinds are grammars.DEFINITION_KINDS).
CREATE OR REPLACE VIEW definitions AS
SELECT unit_id, uri, start_line, end_line, kind, name, qualified_name, lang
FROM units
WHERE name IS NOT NULL
  AND kind IN ('function', 'method', 'class', 'interface', 'enum', 'type', 'namespace');
