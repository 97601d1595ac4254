"""Chunk boundaries follow syntax, fit the budget, cover every byte and have stable ids."""

from __future__ import annotations

import re
import textwrap

import pytest

from codeintel_assets.core.chunking import Chunk, chunk_file, chunk_id

_WORDS = re.compile(r"\w+|[^\w\s]")


def count(lines):
    return [len(_WORDS.findall(line)) for line in lines]


def assert_covers(text: str, chunks: list[Chunk]) -> None:
    data = text.encode("utf-8")
    position = 0
    for chunk in chunks:
        assert chunk.start_byte == position
        assert data[chunk.start_byte : chunk.end_byte].decode("utf-8") == chunk.content
        position = chunk.end_byte
    assert position == len(data)


def test_functions_and_classes_become_chunks_with_one_based_lines():
    text = textwrap.dedent(
        '''\
        import os


        def alpha(x):
            """Alpha does things."""
            total = 0
            for i in range(x):
                total += i * 2
            return total


        class Beta:
            def one(self):
                return 1
        '''
    )
    chunks = chunk_file(
        "r", "m.py", text, "python", budget=60, count_tokens=count, min_merge_tokens=1
    )
    assert_covers(text, chunks)
    by_name = {c.name: c for c in chunks}
    alpha = by_name["alpha"]
    # The blank lines after the import belong to the function that follows them.
    assert (alpha.start_line, alpha.end_line) == (2, 9)
    assert alpha.kind == "function"
    assert "def alpha" in alpha.content
    beta = by_name["Beta"]
    assert beta.kind == "class"
    assert beta.end_line == 14
    assert chunks[0].start_line == 1


def test_small_siblings_are_merged():
    text = "".join(f"def f{i}():\n    return {i}\n\n" for i in range(6))
    chunks = chunk_file("r", "s.py", text, "python", budget=200, count_tokens=count)
    assert len(chunks) == 1
    assert_covers(text, chunks)


def test_oversized_class_is_split_on_methods_and_every_chunk_fits():
    methods = "".join(
        f"    def method_{i}(self, value):\n"
        + "".join(f"        value = value + {j} * {i}\n" for j in range(6))
        + "        return value\n\n"
        for i in range(8)
    )
    text = f'class Big:\n    """Big class."""\n\n{methods}'
    chunks = chunk_file("r", "big.py", text, "python", budget=120, count_tokens=count)
    assert_covers(text, chunks)
    assert len(chunks) > 1
    assert all(sum(count(c.content.split("\n"))) <= 120 for c in chunks)
    # The class header travels with the first method; the rest are methods of Big.
    assert chunks[0].content.startswith("class Big:")
    assert (chunks[0].kind, chunks[0].name) == ("class", "Big")
    assert "def method_0" in chunks[0].content
    assert {c.kind for c in chunks[1:]} == {"method"}
    assert all(c.name.startswith("Big.method_") for c in chunks[1:])


def test_oversized_function_body_is_split_on_statements():
    body = "".join(f"    x{i} = compute({i}, {i + 1}, {i + 2})\n" for i in range(40))
    text = f"def long_function():\n{body}    return x0\n"
    chunks = chunk_file("r", "long.py", text, "python", budget=100, count_tokens=count)
    assert_covers(text, chunks)
    assert len(chunks) >= 3
    assert all(sum(count([c.content])) <= 100 for c in chunks)
    assert all(c.name == "long_function" for c in chunks)


def test_a_single_overlong_line_is_cut_into_character_windows():
    text = "values = [" + ", ".join(str(i) for i in range(400)) + "]\n"
    chunks = chunk_file("r", "data.py", text, "python", budget=50, count_tokens=count)
    assert_covers(text, chunks)
    assert len(chunks) > 1
    assert all(c.start_line == c.end_line == 1 for c in chunks)
    assert all(count([c.content])[0] <= 50 for c in chunks)


def test_plain_text_uses_line_windows():
    text = "".join(f"line {i} of the notes file\n" for i in range(100))
    chunks = chunk_file("r", "notes.txt", text, "text", budget=60, count_tokens=count)
    assert_covers(text, chunks)
    assert all(c.kind == "window" for c in chunks)
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 100


@pytest.mark.parametrize(
    ("uri", "lang", "text", "expected"),
    [
        (
            "a.js",
            "javascript",
            "function greet(n) {\n  return n;\n}\n\nclass Counter {\n  inc() { return 1; }\n}\n",
            {"greet": "function", "Counter": "class"},
        ),
        (
            "a.ts",
            "typescript",
            "export interface P { x: number }\n\nexport function dist(a: P): number {\n"
            "  return a.x;\n}\n",
            {"P": "interface", "dist": "function"},
        ),
    ],
)
def test_javascript_and_typescript_definitions(uri, lang, text, expected):
    chunks = chunk_file("r", uri, text, lang, budget=12, count_tokens=count, min_merge_tokens=1)
    assert_covers(text, chunks)
    assert {c.name: c.kind for c in chunks if c.name} == expected


def test_file_without_final_newline_and_non_ascii_text():
    text = 'def grüß():\n    return "日本語🙂"\n\ndef other():\n    return 2'
    chunks = chunk_file(
        "r", "u.py", text, "python", budget=8, count_tokens=count, min_merge_tokens=1
    )
    assert_covers(text, chunks)
    assert chunks[-1].end_line == 5


def test_ids_are_stable_and_depend_on_repo_uri_and_range():
    text = "def a():\n    return 1\n"
    first = chunk_file("r", "x.py", text, "python", budget=50, count_tokens=count)
    again = chunk_file("r", "x.py", text, "python", budget=50, count_tokens=count)
    assert [c.id for c in first] == [c.id for c in again]
    assert first[0].id == chunk_id("r", "x.py", 0, len(text))
    assert first[0].id != chunk_id("other", "x.py", 0, len(text))
    assert first[0].id != -1


def test_empty_file_has_no_chunks():
    assert chunk_file("r", "e.py", "", "python", budget=50, count_tokens=count) == []


def test_repository_chunks_fit_a_smaller_configured_budget(fixture_repo):
    from codeintel_assets.core.chunk_table import chunk_repository
    from codeintel_assets.core.embedding import SPECIAL_TOKENS, HashingEmbedder, embedding_text
    from codeintel_assets.core.manifest import build_manifest

    embedder = HashingEmbedder(dim=16, max_tokens=256)
    manifest = build_manifest(fixture_repo).files
    full, _ = chunk_repository("r", fixture_repo, manifest, embedder)
    small, _ = chunk_repository("r", fixture_repo, manifest, embedder, max_tokens=48)
    assert len(small) > len(full)
    texts = [embedding_text(c.uri, c.name, c.content) for c in small]
    assert max(embedder.count_tokens(texts)) <= 48 - SPECIAL_TOKENS


def test_default_budget_is_the_length_the_model_was_trained_on(fixture_repo):
    from codeintel_assets.core.chunk_table import chunk_repository
    from codeintel_assets.core.embedding import HashingEmbedder
    from codeintel_assets.core.manifest import build_manifest

    embedder = HashingEmbedder(dim=16, max_tokens=256)
    manifest = build_manifest(fixture_repo).files
    explicit, _ = chunk_repository("r", fixture_repo, manifest, embedder, max_tokens=64)
    embedder.chunk_tokens = 64  # as MiniLM: reads 256 tokens, trained on 128
    default, _ = chunk_repository("r", fixture_repo, manifest, embedder)
    assert [c.id for c in default] == [c.id for c in explicit]
    # A configured budget above what the model reads is capped at the model's limit.
    capped, _ = chunk_repository("r", fixture_repo, manifest, embedder, max_tokens=4096)
    widest, _ = chunk_repository("r", fixture_repo, manifest, embedder, max_tokens=256)
    assert [c.id for c in capped] == [c.id for c in widest] != [c.id for c in default]
