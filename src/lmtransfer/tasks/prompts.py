"""A classification prompt for a causal LM: an instruction naming the label words, k demonstrations from the
training split, then the text to label; each label word scored by its log-likelihood after it
(``features.label_scores``).

Demonstrations are chosen seeded and balanced over the labels (round robin over the labels in a seeded
order, each label's examples in a seeded order), always from train, so an evaluated dev or test example
is never among them. The prompt is tokenised in three parts, the fixed prefix (instruction and
demonstrations), each text, and each label word with its leading space, so that the prefix is computed
once; every part boundary falls after a newline or before the label's space, where a tokenizer does not
merge across it.

Contextual calibration (Zhao et al. 2021) divides each label's probability by the probability the model gives
it after a content-free text ("N/A"), taking out its prior for the label words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONTENT_FREE = "N/A"


@dataclass(frozen=True)
class ClassificationPrompt:
    """What a prompt is made of: the label words (one per label, in label order), the demonstrations as
    (text, label word) pairs, and how a text and a pair of texts are written."""

    words: tuple[str, ...]
    demos: tuple[tuple[str, str], ...] = ()
    instruction: str = "Classify each text as {words}."
    text_line: str = "Text: {text}\nLabel:"

    def prefix(self) -> str:
        """The instruction and the demonstrations, ending with a blank line."""
        head = self.instruction.format(words=", ".join(self.words[:-1]) + f" or {self.words[-1]}") + "\n\n"
        return head + "".join(f"{self.text_line.format(text=text)} {word}\n\n" for text, word in self.demos)

    def example(self, text: str) -> str:
        return self.text_line.format(text=text)


def choose_demos(texts: Sequence[str], labels: Sequence[str], order: Sequence[str], k: int, seed: int) -> list[int]:
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


def calibrated(scores: np.ndarray, content_free: np.ndarray) -> np.ndarray:
    """(N, K) label log-probabilities with the content-free input's (K,) taken out, renormalised over the
    labels: the scores contextual calibration classifies by."""
    shifted = scores - content_free[None, :]
    return shifted - np.logaddexp.reduce(shifted, axis=1, keepdims=True)


def tokenised(tokenizer, prompt: ClassificationPrompt, texts: Sequence[str]) -> tuple[list, list, list]:
    """(prefix ids, each text's ids, each label word's ids with its leading space) for ``label_scores``."""
    prefix = tokenizer(prompt.prefix())["input_ids"]
    examples = [tokenizer(prompt.example(text), add_special_tokens=False)["input_ids"] for text in texts]
    words = [tokenizer(f" {word}", add_special_tokens=False)["input_ids"] for word in prompt.words]
    return prefix, examples, words
