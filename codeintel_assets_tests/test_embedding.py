"""The embedding backends on the real model: same vectors as torch, order kept, exports
made once and keyed apart in the cache; the lean path (no torch) gives the exported
backends' vectors and token counts."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from codeintel_assets.core import chunking, embedding
from codeintel_assets.core.embedding import (
    DEFAULT_BACKEND,
    ONNX,
    ONNX_INT8,
    OPENVINO,
    EmbedderSpec,
    ExportedEmbedder,
    LeanExportedEmbedder,
    SentenceTransformerEmbedder,
    default_model_path,
    embedding_text,
    exported_embedder,
    load_embedder,
)
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import DATA_ENV, PROJECT_ROOT
from codeintel_assets.core.model_folder import lean_recipe


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


def varied_texts() -> list[str]:
    """Return texts that stress tokenization: empty, whitespace, padded, unicode, control
    characters, special-token names, and texts longer than the model reads (256 tokens)."""
    return [
        *real_texts(),
        "",
        "   ",
        "   padded on both sides\t\n  ",
        "\n\n\tdef f(): pass\n\n",
        "héllo wörld — ünïcode 日本語のテキスト 🙂 Σσς ß İı ﬁ",
        "zero\u200bwidth\u00a0nbsp\x00nul\x07bell",
        "[CLS] [SEP] [PAD] [MASK] [UNK] as text",
        "CamelCaseIdentifier snake_case_id 12345.678e-9 0xDEADBEEF",
        "x" * 3000,
        " ".join(["token"] * 600),
        "\n".join(f"    line_{i} = compute(value_{i}, other)  # note {i}" for i in range(150)),
    ]


@pytest.fixture(scope="module")
def torch_model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root whose model cache holds the default model's export (made once)."""
    root = tmp_path_factory.mktemp("data")
    ExportedEmbedder(OPENVINO, batch_size=2, exports=root / "cache" / "models")
    return root


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


@pytest.mark.model
@pytest.mark.parametrize("backend", [OPENVINO, ONNX, ONNX_INT8])
def test_lean_embedder_gives_the_exported_vectors_and_token_counts(backend: str, data_root: Path):
    exports = data_root / "cache" / "models"
    today = ExportedEmbedder(backend, batch_size=3, exports=exports)
    lean = exported_embedder(backend, batch_size=3, exports=exports)
    assert isinstance(lean, LeanExportedEmbedder)
    # The same model id keeps the embedding cache and the build keys; the rest, the chunks.
    for field in ("model_id", "dim", "max_tokens", "chunk_tokens"):
        assert getattr(lean, field) == getattr(today, field), field
    texts = varied_texts()
    assert lean.count_tokens(texts) == today.count_tokens(texts)
    assert max(lean.count_tokens(texts)) > lean.max_tokens  # some texts are truncated
    expected, got = today.embed(texts), lean.embed(texts)
    assert np.sum(expected * got, axis=1).min() >= 0.99999
    assert np.abs(expected - got).max() < 1e-5
    assert lean.embed([]).shape == (0, lean.dim) and lean.count_tokens([]) == []


def test_batches_of_long_texts_hold_fewer_rows():
    def sizes(counts: list[int], batch_size: int = 64) -> list[int]:
        batches = list(embedding.token_budget_batches(np.array(counts), batch_size))
        # Consecutive slices covering every text once.
        assert [i for b in batches for i in range(b.start, b.stop)] == list(range(len(counts)))
        return [b.stop - b.start for b in batches]

    assert sizes([10] * 100) == [64, 36]  # within FULL_BATCH_TOKENS: as before
    assert sizes([126] * 64) == [64]  # 128 with the special tokens: still a full batch
    # 256 tokens: a quarter of the rows (rows × length² within a full batch's).
    assert sizes([254] * 40) == [16, 16, 8]
    assert sizes([100] * 50 + [254] * 50) == [50, 16, 16, 16, 2]
    assert sizes([5000, 6000]) == [1, 1]  # one text at least
    assert sizes([]) == []


# Loads the default embedder in a fresh process, its thread setting seen by OpenVINO.
LOAD_IN_A_FRESH_PROCESS = """
import json, sys
import openvino
configs = []
compile_model = openvino.Core.compile_model
def recording(self, model, device, config):
    configs.append(dict(config))
    return compile_model(self, model, device, config)
openvino.Core.compile_model = recording
from codeintel_assets.core.embedding import EmbedderSpec, load_embedder, set_inference_threads
set_inference_threads(1)
embedder = load_embedder(EmbedderSpec())
vector = embedder.embed(["def f(): pass"])[0]
print(json.dumps({
    "kind": type(embedder).__name__,
    "imported": [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules],
    "threads": [c.get("INFERENCE_NUM_THREADS") for c in configs],
    "vector": vector.tolist(),
}))
"""


def _load_in_a_fresh_process(data_root: Path) -> dict:
    """Run ``LOAD_IN_A_FRESH_PROCESS`` with ``data_root`` as the data root; return its report."""
    env = {**os.environ, DATA_ENV: str(data_root), "PYTHONPATH": str(PROJECT_ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    loaded = json.loads(child.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.model
def test_a_process_with_the_export_loads_the_default_embedder_without_torch(data_root: Path):
    loaded = _load_in_a_fresh_process(data_root)
    assert loaded["kind"] == "LeanExportedEmbedder"
    assert loaded["imported"] == []
    assert loaded["threads"] == [1]  # set_inference_threads still reaches the session
    today = ExportedEmbedder(OPENVINO, batch_size=2, exports=data_root / "cache" / "models")
    assert float(np.dot(loaded["vector"], today.embed(["def f(): pass"])[0])) >= 0.99999


@pytest.mark.model
def test_a_missing_export_is_made_in_a_child_and_the_build_stays_lean(tmp_path: Path):
    # A first build on a fresh data root: torch makes the export in a child process only.
    loaded = _load_in_a_fresh_process(tmp_path)
    assert loaded["kind"] == "LeanExportedEmbedder"
    assert loaded["imported"] == []
    exports = tmp_path / "cache" / "models"
    assert next(exports.rglob("model.onnx")).exists()
    today = ExportedEmbedder(OPENVINO, batch_size=2, exports=exports)
    assert float(np.dot(loaded["vector"], today.embed(["def f(): pass"])[0])) >= 0.99999


@pytest.mark.model
def test_lean_embedder_answers_threads_at_once(data_root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(embedding, "_inference_threads", None)
    embedding.set_inference_threads(1)
    lean = exported_embedder(OPENVINO, batch_size=2, exports=data_root / "cache" / "models")
    texts = varied_texts()

    def tokens_and_vector(text: str) -> tuple[int, np.ndarray]:
        return lean.count_tokens([text])[0], lean.embed([text])[0]

    alone = [tokens_and_vector(text) for text in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(tokens_and_vector, texts * 4))
    for index, (tokens, vector) in enumerate(together):
        assert tokens == alone[index % len(texts)][0]
        np.testing.assert_allclose(vector, alone[index % len(texts)][1], atol=1e-5)


def model_folder_copy(tmp_path: Path) -> Path:
    """Return a copy of the default model's folder without its weights (its JSON files)."""
    copy = tmp_path / "model"
    shutil.copytree(default_model_path(), copy, ignore=shutil.ignore_patterns("*.safetensors"))
    return copy


def edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}), encoding="utf-8")


def test_the_default_model_has_a_lean_recipe(tmp_path: Path):
    recipe = lean_recipe(model_folder_copy(tmp_path))
    assert recipe is not None
    assert (recipe.max_seq_length, recipe.pad_token, recipe.dim) == (256, "[PAD]", 384)


@pytest.mark.parametrize(
    "change",
    ["cls pooling", "pooling mode", "dense module", "lowercasing", "prompt", "no tokenizer.json",
     "left padding", "unknown setting"],
)  # fmt: skip
def test_a_model_the_lean_path_cannot_reproduce_has_no_recipe(change: str, tmp_path: Path):
    folder = model_folder_copy(tmp_path)
    if change == "cls pooling":
        edit_json(folder / "1_Pooling" / "config.json", pooling_mode_cls_token=True)
    elif change == "pooling mode":
        edit_json(folder / "1_Pooling" / "config.json", pooling_mode="max")
    elif change == "dense module":
        modules = json.loads((folder / "modules.json").read_text())
        modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense",
                           "type": "sentence_transformers.models.Dense"})  # fmt: skip
        (folder / "modules.json").write_text(json.dumps(modules))
    elif change == "lowercasing":
        edit_json(folder / "sentence_bert_config.json", do_lower_case=True)
    elif change == "prompt":
        edit_json(folder / "config_sentence_transformers.json",
                  prompts={"query": "query: "}, default_prompt_name="query")  # fmt: skip
    elif change == "no tokenizer.json":
        (folder / "tokenizer.json").unlink()
    elif change == "left padding":
        edit_json(folder / "tokenizer_config.json", padding_side="left")
    else:
        edit_json(folder / "sentence_bert_config.json", processing_kwargs={"text": {}})
    assert lean_recipe(folder) is None


@pytest.mark.model
def test_tokens_are_counted_in_slices_with_the_counts_of_one_pass(
    data_root: Path, torch_model: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
):
    """Counting holds one slice's encodings at a time; the counts are a whole pass's."""
    lean = exported_embedder(OPENVINO, exports=data_root / "cache" / "models")
    texts = varied_texts() * 3
    for embedder in (lean, torch_model):
        whole = embedder.count_tokens(texts)
        monkeypatch.setattr(embedding, "COUNT_SLICE", 2)
        assert embedder.count_tokens(texts) == whole
        assert whole == [embedder.count_tokens([t])[0] for t in texts]
        monkeypatch.undo()
