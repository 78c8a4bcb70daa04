"""A classification prompt for a causal LM: an instruction naming the label words, k demonstrations from the
training split, then the text to label; each label word scored by its log-likelihood after it
(``features.label_scores``).

Demonstrations are chosen seeded and balanced over the labels (round robin over the labels in a seeded
order, each label's examples in a seeded order), always from train, so an evaluated dev or test example
is never among them. The prompt is written in three parts, the fixed prefix (instruction and
demonstrations), each item (a text or a pair), and each label word, so that the prefix is computed once.

Plain text reads ``Text: ...`` then ``Label: word``, each label word after a space. With the model's chat
template, the instruction is the system message and each demonstration a user turn (the text) and an
assistant turn (its label word); the template is rendered once around a placeholder, and the text to label
goes where the placeholder was, so the prefix and what follows the text are the template's own. Every
part boundary falls after a newline or a special token, or before the label's space, where a tokenizer does
not merge across it.

Contextual calibration (Zhao et al. 2021) divides each label's probability by the probability the model gives
it after a content-free text ("N/A"), taking out its prior for the label words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

CONTENT_FREE = "N/A"
PLACEHOLDER = "\x00ITEM\x00"  # where each item goes in a rendered chat template
Item = str | tuple[str, str]  # a text, or a pair of texts


@dataclass(frozen=True)
class Parts:
    """A prompt as it is tokenised: the shared prefix; what comes before and after each item; the text in
    front of every label word (a space in plain text, nothing after a chat template's assistant header)."""

    prefix: str
    after_item: str
    label_lead: str
    special_tokens: bool  # the tokenizer adds its own (BOS) to the prefix; a chat template writes its own


@dataclass(frozen=True)
class ClassificationPrompt:
    """What a prompt is made of: the label words (one per label, in label order), the demonstrations as
    (item, label word) pairs, and the instruction (``{words}``: the label words listed)."""

    words: tuple[str, ...]
    demos: tuple[tuple[Item, str], ...] = ()
    instruction: str = "Classify each text as {words}."

    def instruction_text(self) -> str:
        listed = self.words[0] if len(self.words) == 1 else ", ".join(self.words[:-1]) + f" or {self.words[-1]}"
        return self.instruction.format(words=listed)

    @staticmethod
    def item(item: Item) -> str:
        """An item as the prompt shows it: ``Text: ...``, or a pair as ``Text 1: ...`` and ``Text 2: ...``."""
        if isinstance(item, str):
            return f"Text: {item}"
        return f"Text 1: {item[0]}\nText 2: {item[1]}"

    def prefix(self) -> str:
        """Plain text: the instruction and the demonstrations, ending with a blank line."""
        demos = "".join(f"{self.example(item)} {word}\n\n" for item, word in self.demos)
        return f"{self.instruction_text()}\n\n{demos}"

    def example(self, item: Item) -> str:
        """Plain text: an item, then the line its label word follows."""
        return f"{self.item(item)}\nLabel:"

    def parts(self, tokenizer=None) -> Parts:
        """Plain text without a tokenizer; in ``tokenizer``'s chat template with one."""
        if tokenizer is None:
            return Parts(self.prefix(), "\nLabel:", " ", True)
        messages = [{"role": "system", "content": self.instruction_text()}]
        for item, word in self.demos:
            messages += [{"role": "user", "content": self.item(item)}, {"role": "assistant", "content": word}]
        messages.append({"role": "user", "content": PLACEHOLDER})
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        before, found, after = rendered.partition(PLACEHOLDER)
        if not found:
            raise ValueError("the chat template dropped the user's message: set prompt.chat_template: off")
        return Parts(before, after, "", False)


@dataclass(frozen=True)
class Tokenised:
    """A prompt's parts as token ids: what ``features.label_scores`` takes."""

    prefix: list[int]
    items: list[list[int]]
    labels: list[list[int]]

    @cached_property
    def tokens_per_item(self) -> float:
        """The mean tokens a model reads per item: the prefix, the item and the label words (every label)."""
        mean_item = sum(map(len, self.items)) / max(len(self.items), 1)
        return len(self.prefix) + mean_item + sum(map(len, self.labels))


def tokenised(tokenizer, prompt: ClassificationPrompt, items: Sequence[Item], chat: bool = False) -> Tokenised:
    """The prompt's prefix, each item (with what follows it up to the label) and each label word, as ids."""
    parts = prompt.parts(tokenizer if chat else None)
    prefix = tokenizer(parts.prefix, add_special_tokens=parts.special_tokens)["input_ids"]
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    shown = [prompt.item(item) + parts.after_item for item in items]
    return Tokenised(prefix, [ids(text) for text in shown], [ids(parts.label_lead + word) for word in prompt.words])


def label_words(config, labels: Sequence[str]) -> tuple[str, ...]:
    """Each label's words, in label order: ``prompt.verbalizer``'s, or the label names; every label needs
    words of its own (a ConfigError naming ``prompt.verbalizer`` otherwise)."""
    verbalizer = config.prompt.verbalizer
    if verbalizer is None:
        return tuple(labels)
    unknown = sorted(set(verbalizer) - set(labels))
    missing = [label for label in labels if label not in verbalizer]
    if unknown or missing:
        told = ([f"no label {', '.join(map(repr, unknown))} in train"] if unknown else []) + (
            [f"no words for {', '.join(map(repr, missing))}"] if missing else []
        )
        raise config.error("prompt.verbalizer", "; ".join(told) + f" (the labels: {', '.join(labels)})")
    words = tuple(verbalizer[label].strip() for label in labels)
    if len(set(words)) < len(words) or not all(words):
        raise config.error("prompt.verbalizer", "each label needs words of its own, not empty or shared")
    return words


def cut(tokenizer, text: str, max_tokens: int) -> str:
    """``text`` cut after ``max_tokens`` of its tokens (as it was, where it is no longer)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def choose_demos(texts: Sequence[Item], labels: Sequence[str], order: Sequence[str], k: int, seed: int) -> list[int]:
    """The indices of ``k`` training examples, balanced over the labels: the labels in a seeded order are taken
    in turn, each giving its next example in a seeded order, until ``k`` are chosen (or the data runs out)."""
    rng = np.random.default_rng(seed)
    pools = {label: [i for i in rng.permutation(len(texts)) if labels[i] == label] for label in order}
    turns = [order[j] for j in rng.permutation(len(order))]
    chosen: list[int] = []
    while len(chosen) < k and any(pools.values()):
        for label in turns:
            if pools[label] and len(chosen) < k:
                chosen.append(int(pools[label].pop(0)))
    return chosen


def nearest_demos(similarity: np.ndarray, same: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each item's ``k`` most similar training examples, most similar last (nearest the
    item), from (N, T) ``similarity``; ``same`` (N, T) marks a training example that is the item itself (the
    same text), which is never chosen."""
    masked = np.where(same, -np.inf, similarity)  # (N, T)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]  # (N, k) most similar first
    return order[:, ::-1]


def calibrated(scores: np.ndarray, content_free: np.ndarray) -> np.ndarray:
    """(N, K) label log-probabilities with the content-free input's (K,) taken out, renormalised over the
    labels: the scores contextual calibration classifies by."""
    shifted = scores - content_free[None, :]
    return shifted - np.logaddexp.reduce(shifted, axis=1, keepdims=True)


def content_free(item: Item) -> Item:
    """The content-free input of the same shape as ``item``."""
    return CONTENT_FREE if isinstance(item, str) else (CONTENT_FREE, CONTENT_FREE)
