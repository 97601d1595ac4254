"""What a sentence-transformers model folder asks of its texts and its outputs, read from
the folder's JSON files without importing sentence-transformers (or torch).

``lean_recipe`` returns what the lean embedder (``embedding.LeanExportedEmbedder``) needs
to reproduce sentence-transformers exactly on an exported transformer: the tokenizer
file, the length texts are truncated to, the pad token and the vector dimension. It
returns ``None`` for anything that path would not reproduce exactly (another pooling
mode, a Dense module, lowercasing added by sentence-transformers, a default prompt, left
padding, no ``tokenizer.json``): such a model keeps sentence-transformers' own path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The modules the lean path runs, as modules.json names them (sentence-transformers 2 to 6):
# the transformer (exported), mean pooling and, optionally, L2 normalization (the embedder
# normalizes every vector anyway).
TRANSFORMER, POOLING, NORMALIZE = "Transformer", "Pooling", "Normalize"
# sentence_bert_config.json keys whose meaning the lean path reproduces; any other key
# (a processing override of a newer sentence-transformers) keeps the model on its own path.
TRANSFORMER_KEYS = {"max_seq_length", "do_lower_case"}
LEGACY_POOLING_MODES = (
    "pooling_mode_cls_token",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)
POOLING_KEYS = {
    "word_embedding_dimension",
    "embedding_dimension",
    "pooling_mode",
    "include_prompt",  # only matters with a prompt, which the lean path never has
    *LEGACY_POOLING_MODES,
}


@dataclass(frozen=True)
class LeanRecipe:
    """How sentence-transformers prepares a model's texts and pools its token embeddings,
    when that is mean pooling over the attention mask."""

    tokenizer_file: Path  # tokenizer.json: normalizer, pre-tokenizer, vocabulary, [CLS]/[SEP]
    max_seq_length: int  # texts are truncated to this many tokens, special tokens included
    pad_token: str  # batches are padded on the right to their longest text with this token
    dim: int  # the pooled vector's dimension


def lean_recipe(folder: Path) -> LeanRecipe | None:
    """Return the lean recipe of the sentence-transformers model in ``folder``, or ``None``
    when the folder asks for anything the lean path does not reproduce exactly."""
    modules = _json(folder / "modules.json")
    if not isinstance(modules, list) or not _lean_modules(modules):
        return None
    transformer = _json(folder / "sentence_bert_config.json")
    pooling = _json(folder / modules[1].get("path", "") / "config.json")
    tokenizer_config = _json(folder / "tokenizer_config.json") or {}
    special_tokens = _json(folder / "special_tokens_map.json") or {}
    if not (
        (folder / "tokenizer.json").is_file()
        and isinstance(transformer, dict)
        and set(transformer) <= TRANSFORMER_KEYS
        and isinstance(transformer.get("max_seq_length"), int)
        # sentence-transformers adds a lowercasing normalizer for this flag: not reproduced.
        and not transformer.get("do_lower_case")
        and isinstance(pooling, dict)
        and set(pooling) <= POOLING_KEYS
        and _mean_pooling(pooling)
        and not _default_prompt(folder)
        and tokenizer_config.get("padding_side", "right") == "right"
        and tokenizer_config.get("truncation_side", "right") == "right"
    ):
        return None
    pad_token = _token_text(tokenizer_config.get("pad_token") or special_tokens.get("pad_token"))
    dim = pooling.get("word_embedding_dimension", pooling.get("embedding_dimension"))
    if pad_token is None or not isinstance(dim, int):
        return None
    return LeanRecipe(folder / "tokenizer.json", transformer["max_seq_length"], pad_token, dim)


def _lean_modules(modules: list[Any]) -> bool:
    """Whether the modules are the transformer at the folder's root, pooling, and at most
    a normalization."""
    names = [_module_name(module) for module in modules]
    return (
        names in ([TRANSFORMER, POOLING], [TRANSFORMER, POOLING, NORMALIZE])
        and modules[0].get("path", "") == ""
    )


def _module_name(module: Any) -> str | None:
    kind = module.get("type", "") if isinstance(module, dict) else ""
    return kind.rsplit(".", 1)[-1] if kind.startswith("sentence_transformers.") else None


def _mean_pooling(pooling: dict[str, Any]) -> bool:
    """Whether the pooling config asks for mean pooling alone, in either of its spellings
    (``pooling_mode``, or the older ``pooling_mode_*_tokens`` flags)."""
    if "pooling_mode" in pooling:
        mode = pooling["pooling_mode"]
        return mode == "mean" or mode == ["mean"]
    flags = {key: bool(pooling.get(key)) for key in LEGACY_POOLING_MODES}
    return [key for key, on in flags.items() if on] == ["pooling_mode_mean_tokens"]


def _default_prompt(folder: Path) -> bool:
    """Whether sentence-transformers would prepend a prompt to every text by default."""
    config = _json(folder / "config_sentence_transformers.json")
    return isinstance(config, dict) and bool(config.get("default_prompt_name"))


def _token_text(token: Any) -> str | None:
    """Return a special token's text, written as a string or as an added-token dict."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


def _json(path: Path) -> Any:
    """Return the parsed JSON file, or ``None`` when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
