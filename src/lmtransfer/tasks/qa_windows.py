"""Question + context tokenised into overlapping windows of at most ``max_length`` tokens (a long context
gives several), with each window's context tokens, character offsets and the gold start / end token of the
first answer. Needs a fast tokenizer (for offsets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from lmtransfer.core.errors import DataError
from lmtransfer.data.squad import QAExample


@dataclass
class QAWindows:
    """Tokenised windows over (question, context) pairs: one entry per window in every list / array.

    Windows are not padded (lengths differ); the caller pads per batch with the tokenizer's pad id and
    attention mask 0. A window is ``[CLS] question [SEP] context-part [SEP]`` for BERT-like tokenizers;
    consecutive windows of one example share ``stride`` context tokens. The gold positions point at the
    tokens that cover the first answer when that answer lies wholly in the window, else both at 0 (the
    CLS token), as they do for impossible (v2) questions.
    """

    input_ids: list[np.ndarray]  # each (T_w,) int64
    attention_mask: list[np.ndarray]  # each (T_w,) int64, all ones until the caller pads
    token_type_ids: list[np.ndarray] | None  # each (T_w,) int64; None when the tokenizer makes none
    example_index: np.ndarray  # (W,) int64: the example each window comes from
    context_mask: list[np.ndarray]  # each (T_w,) bool: True on context tokens (sequence id 1)
    context_range: np.ndarray  # (W, 2) int64: first context token, one past the last ((0, 0) if none)
    offsets: list[np.ndarray]  # each (T_w, 2) int64: character span in the original context; -1 off context
    start_positions: np.ndarray  # (W,) int64: gold first answer token, 0 when not in the window
    end_positions: np.ndarray  # (W,) int64: gold last answer token (inclusive), 0 when not in the window

    def __len__(self) -> int:
        return len(self.input_ids)

    def windows_of(self, example: int) -> np.ndarray:
        """The indices of the windows built from example number ``example``, in context order."""
        return np.flatnonzero(self.example_index == example)  # (k,)


def _truncate_questions(tokenizer: PreTrainedTokenizerBase, examples: list[QAExample], limit: int) -> list[str]:
    """Questions stripped and cut after their first ``limit`` tokens (at the end character of token ``limit``)."""
    questions = [example.question.strip() for example in examples]
    if not questions:  # a fast tokenizer fails on an empty batch
        return questions
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    for i, offsets in enumerate(encoded["offset_mapping"]):
        if len(offsets) > limit:
            questions[i] = questions[i][: offsets[limit - 1][1]]
    return questions


def _check_room(
    tokenizer: PreTrainedTokenizerBase, examples: list[QAExample], questions: list[str], max_length: int, stride: int
) -> None:
    """Each window must have room for more than ``stride`` context tokens, or the tokenizer fails (a Rust panic)."""
    if not examples:
        return
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False, verbose=False)["input_ids"]]
    for example, length in zip(examples, lengths):
        room = max_length - specials - length
        if room <= stride:
            raise DataError(
                f"example '{example.id}': the question takes {length} tokens (+{specials} special), leaving "
                f"{room} for the context in max_length={max_length}; that must be more than stride={stride}",
                field="question",
            )


def _gold_tokens(offsets: np.ndarray, context_mask: np.ndarray, example: QAExample) -> tuple[int, int]:
    """First and last token covering the first answer, or (0, 0) when it is not wholly inside this window."""
    if example.is_impossible or not example.answers:
        return 0, 0
    answer = example.answers[0]
    first, last = answer.start, answer.start + len(answer.text)  # characters [first, last)
    tokens = np.flatnonzero(context_mask)  # (C,)
    if tokens.size == 0:
        return 0, 0
    starts, ends = offsets[tokens, 0], offsets[tokens, 1]  # (C,), (C,)
    if starts[0] > first or ends[-1] < last:
        return 0, 0
    start = tokens[np.argmax(ends > first)]  # the first token that ends after the answer begins
    end = tokens[tokens.size - 1 - np.argmax(starts[::-1] < last)]  # the last token that begins before it ends
    return (int(start), int(end)) if start <= end else (0, 0)


def make_windows(
    tokenizer: PreTrainedTokenizerBase,
    examples: list[QAExample],
    max_length: int = 384,
    stride: int = 128,
    max_query_length: int = 64,
    chunk_size: int = 1000,
) -> QAWindows:
    """Tokenise every (question, context) pair into windows of at most ``max_length`` tokens.

    The question (stripped of surrounding whitespace) is first cut to ``max_query_length`` tokens. The context
    is truncated "only_second" with overflow, so a long one gives several windows that overlap by ``stride``
    tokens. Needs a fast tokenizer (for offsets). ``chunk_size`` examples are tokenised per call. A question
    that leaves no more than ``stride`` tokens for the context raises ``DataError`` naming the example.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("make_windows needs a fast (Rust-backed) tokenizer for its offset mapping")
    if max_query_length < 1 or stride < 0 or chunk_size < 1:
        raise ValueError("max_query_length and chunk_size must be positive and stride not negative")
    questions = _truncate_questions(tokenizer, examples, max_query_length)
    _check_room(tokenizer, examples, questions, max_length, stride)
    parts: dict[str, list] = {key: [] for key in ("input_ids", "attention_mask", "token_type_ids", "offsets")}
    example_index, context_mask, context_range, gold = [], [], [], []
    for begin in range(0, len(examples), chunk_size):
        chunk = examples[begin : begin + chunk_size]
        encoded = tokenizer(
            questions[begin : begin + chunk_size],
            [example.context for example in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        for w, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            is_context = np.array([s == 1 for s in encoded.sequence_ids(w)], dtype=bool)  # (T,)
            offsets = np.asarray(encoded["offset_mapping"][w], dtype=np.int64).reshape(-1, 2)  # (T, 2)
            offsets[~is_context] = -1
            positions = np.flatnonzero(is_context)  # (C,)
            example_index.append(begin + sample)
            context_mask.append(is_context)
            context_range.append((positions[0], positions[-1] + 1) if positions.size else (0, 0))
            gold.append(_gold_tokens(offsets, is_context, chunk[sample]))
            parts["offsets"].append(offsets)
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                if key in encoded:
                    parts[key].append(np.asarray(encoded[key][w], dtype=np.int64))  # (T,)
    gold_array = np.array(gold, dtype=np.int64).reshape(-1, 2)  # (W, 2)
    return QAWindows(
        input_ids=parts["input_ids"],
        attention_mask=parts["attention_mask"],
        token_type_ids=parts["token_type_ids"] or None,
        example_index=np.array(example_index, dtype=np.int64),
        context_mask=context_mask,
        context_range=np.array(context_range, dtype=np.int64).reshape(-1, 2),
        offsets=parts["offsets"],
        start_positions=gold_array[:, 0],
        end_positions=gold_array[:, 1],
    )
