"""The embedding backends on the real model: same vectors as torch, order kept, exports
made once and keyed apart in the cache."""

from __future__ import annotations

import inspect
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from codeintel_assets.core import chunking, embedding
from codeintel_assets.core.embedding import (
    DEFAULT_BACKEND,
    ONNX,
    OPENVINO,
    EmbedderSpec,
    ExportedEmbedder,
    SentenceTransformerEmbedder,
    embedding_text,
    load_embedder,
)
from codeintel_assets.core.errors import CodeintelError


def real_texts() -> list[str]:
    """Return a handful of real texts as the build embeds them: this project's functions,
    short and long, with their path headers, and a natural-language query."""
    texts = [
        embedding_text(
            f"codeintel_assets/core/{module.__name__.rsplit('.', 1)[-1]}.py",
            function.__name__,
            inspect.getsource(function),
        )  # fmt: skip
        for module, function in (
            (embedding, embedding.normalize_rows),
            (embedding, embedding.text_key),
            (embedding, embedding.export_onnx),
            (chunking, chunking.chunk_id),
            (chunking, chunking.chunk_file),
        )
    ]
    return [*texts, "where are chunk ids made stable"]


@pytest.fixture(scope="module")
def torch_model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu", batch_size=2)


@pytest.mark.model
@pytest.mark.parametrize("backend", sorted({DEFAULT_BACKEND, ONNX, OPENVINO} - {"torch"}))
def test_exported_backend_gives_the_torch_vectors(
    backend: str, torch_model: SentenceTransformerEmbedder, tmp_path: Path
):
    texts = real_texts()
    exported = ExportedEmbedder(backend, batch_size=2, exports=tmp_path)
    cosine = np.sum(exported.embed(texts) * torch_model.embed(texts), axis=1)
    assert cosine.min() >= 0.99, cosine
    assert exported.model_id != torch_model.model_id  # its own cache file and build key
    assert exported.model_id.endswith(f"+{backend}")
    export = next(tmp_path.rglob("model.onnx"))
    made = export.stat().st_mtime_ns
    ExportedEmbedder(backend, batch_size=2, exports=tmp_path)
    assert export.stat().st_mtime_ns == made  # exported once, then reused


@pytest.mark.model
def test_token_sorted_batches_keep_the_input_order(torch_model: SentenceTransformerEmbedder):
    texts = real_texts()  # lengths differ, so sorting moves texts across batches of 2
    together = torch_model.embed(texts)
    alone = np.stack([torch_model.embed([text])[0] for text in texts])
    assert np.sum(together * alone, axis=1).min() > 0.9999
    assert torch_model.embed([]).shape == (0, torch_model.dim)


def test_unknown_backend_or_device_is_a_clear_error():
    with pytest.raises(CodeintelError, match="'tensorrt' is not one of"):
        load_embedder(EmbedderSpec(backend="tensorrt"))
    with pytest.raises(CodeintelError, match="runs on the CPU; device 'cuda' needs backend"):
        load_embedder(EmbedderSpec(backend=ONNX, device="cuda"))


def test_the_backend_is_part_of_what_the_build_records():
    assert EmbedderSpec().describe()["backend"] == DEFAULT_BACKEND
    assert EmbedderSpec(backend=ONNX).describe() != EmbedderSpec().describe()


@pytest.mark.model
@pytest.mark.parametrize("backend", [ONNX, OPENVINO])
def test_exported_backend_answers_threads_at_once_with_one_thread_each(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A server embeds queries on several request threads at once, each session given one
    # inference thread (use_query_threads): every thread must get its own text's vector.
    monkeypatch.setattr(embedding, "_inference_threads", None)
    embedding.set_inference_threads(1)
    exported = ExportedEmbedder(backend, batch_size=1, exports=tmp_path)
    texts = real_texts()
    alone = [exported.embed([text])[0] for text in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda text: exported.embed([text])[0], texts * 4))
    for index, vector in enumerate(together):
        np.testing.assert_allclose(vector, alone[index % len(texts)], atol=1e-5)
