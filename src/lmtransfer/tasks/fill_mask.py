"""Fill-mask: the most likely tokens, with probabilities, for each mask in a text.

A text marks the places to fill with ``[MASK]``, ``<mask>`` or ``{mask}``, whatever the model's own
mask token is. The model must have a trained masked-LM head: one whose checkpoint lacks it (a
sentence encoder such as all-MiniLM-L6-v2) is refused, since its head would be random; ``pretrain``
gives an encoder one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lmtransfer.core.errors import ConfigError, DataError, ModelError, shown
from lmtransfer.encoders.masked_lm import load_masked_lm

MASK_SPELLINGS = re.compile(r"\[MASK\]|<mask>|\{mask\}")
PRETRAIN_HINT = "run 'lmtransfer pretrain' on it first to give it one"


def fill_mask(
    model: str | Path | tuple[PreTrainedModel, PreTrainedTokenizerBase],
    text_or_texts: str | Sequence[str],
    top_k: int = 5,
    targets: Sequence[str] | None = None,
) -> list[list[dict]] | list[list[list[dict]]]:
    """The ``top_k`` most likely tokens for each mask of each text.

    ``model`` is an alias, a directory, a hub id, or a loaded ``(model, tokenizer)`` pair. A text gives
    one list per mask, of ``{"token", "token_id", "score", "sequence"}`` rows sorted by ``score`` (the
    probability over the whole vocabulary); ``sequence`` is the text with that mask filled in and any
    other left as the model's mask token. A list of texts gives a list of those.

    ``targets`` scores only these words, and every one of them (``top_k`` is then ignored). A target
    must be one token of the vocabulary; one that the tokenizer splits in pieces is an error, since the
    probability of its first piece is not the probability of the word.
    """
    if top_k < 1:
        raise ConfigError(f"must be at least 1, not {top_k}", field="top_k")
    texts = [text_or_texts] if isinstance(text_or_texts, str) else list(text_or_texts)
    lm, tokenizer = _model_and_tokenizer(model)
    if tokenizer.mask_token is None:
        raise ModelError("this tokenizer has no mask token, so it cannot fill masks", field="model")
    candidates = None if targets is None else _target_ids(tokenizer, targets)
    marked = [MASK_SPELLINGS.sub(tokenizer.mask_token, text) for text in texts]
    probabilities = _mask_probabilities(lm, tokenizer, marked)  # per text: (masks, V)
    results = []
    for text, probs in zip(marked, probabilities):
        if candidates is None:
            scores, ids = probs.topk(min(top_k, probs.shape[-1]), dim=-1)  # (masks, k) each
        else:
            scores, order = probs[:, candidates].sort(dim=-1, descending=True)  # (masks, targets)
            ids = candidates[order]  # (masks, targets)
        results.append([_rows(tokenizer, text, i, s, t) for i, (s, t) in enumerate(zip(scores, ids))])
    return results[0] if isinstance(text_or_texts, str) else results


def _model_and_tokenizer(
    model: str | Path | tuple[PreTrainedModel, PreTrainedTokenizerBase],
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if isinstance(model, tuple):
        return model
    loaded = load_masked_lm(str(model))
    if loaded.new_head:
        raise ModelError(
            f"this checkpoint has no masked-LM head ({len(loaded.new_head)} weights such as {loaded.new_head[0]} "
            f"would be random): {PRETRAIN_HINT}",
            path=loaded.source,
        )
    return loaded.model, loaded.tokenizer


def _target_ids(tokenizer: PreTrainedTokenizerBase, targets: Sequence[str]) -> torch.Tensor:
    vocab = tokenizer.get_vocab()
    ids: list[int] = []
    for word in dict.fromkeys(targets):  # ordered and unique
        if word in vocab:
            ids.append(vocab[word])
            continue
        pieces = tokenizer.tokenize(word)
        if len(pieces) != 1:
            detail = f"splits into {', '.join(pieces)}" if pieces else "is no token"
            raise DataError(f"target '{shown(word)}' {detail}: fill-mask scores single tokens only", field="targets")
        ids.append(tokenizer.convert_tokens_to_ids(pieces[0]))
    if not ids:
        raise DataError("no targets given", field="targets")
    return torch.tensor(ids)  # (targets,)


@torch.inference_mode()
def _mask_probabilities(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], chunk: int = 8
) -> list[torch.Tensor]:
    """For each text, the vocabulary distribution at each of its masks: (masks, V)."""
    limit = min(tokenizer.model_max_length, 512)
    model.eval()
    device = next(model.parameters()).device
    found = []
    for start in range(0, len(texts), chunk):
        batch = tokenizer(
            texts[start : start + chunk], padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        logits = model(**batch.to(device)).logits  # (B, T, V)
        is_mask = batch["input_ids"] == tokenizer.mask_token_id  # (B, T)
        for i, text in enumerate(texts[start : start + chunk], start=start):
            masks = int(is_mask[i - start].sum())
            if masks == 0 and tokenizer.mask_token not in text:
                raise DataError(
                    f"text {i + 1} has no mask: put [MASK], <mask> or {{mask}} where a token is to be predicted",
                    field="text",
                )
            if masks < text.count(tokenizer.mask_token):
                raise DataError(f"text {i + 1}: a mask lies beyond the first {limit} tokens", field="text")
            found.append(logits[i - start][is_mask[i - start]].float().softmax(dim=-1).cpu())  # (masks, V)
    return found


def _rows(
    tokenizer: PreTrainedTokenizerBase, text: str, mask: int, scores: torch.Tensor, ids: torch.Tensor
) -> list[dict]:
    """The rows of mask number ``mask``: scores and ids are (k,); the token as the tokenizer decodes it alone."""
    before, *after = text.split(tokenizer.mask_token)
    rows = []
    for score, token_id in zip(scores.tolist(), ids.tolist()):
        token = tokenizer.decode([token_id]).strip()
        filled = [token if j == mask else tokenizer.mask_token for j in range(len(after))]
        sequence = before + "".join(f + rest for f, rest in zip(filled, after))
        rows.append({"token": token, "token_id": token_id, "score": score, "sequence": sequence})
    return rows
