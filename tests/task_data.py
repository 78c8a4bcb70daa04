"""Tiny data files for every task, in the formats real data comes in (GLUE TSV, JSONL, CoNLL, SQuAD JSON)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import SENTENCES, WORDS

ENTITY_WORDS = {"PER": ["rose", "day"], "ORG": ["market", "news"], "LOC": ["film", "plot"]}
OTHER_WORDS = [w for w in WORDS if not any(w in names for names in ENTITY_WORDS.values())]


def write_pairs(folder: Path) -> dict[str, Path]:
    """MRPC's layout: a byte-order mark, 'Quality' first, the two texts last."""
    rng = random.Random(0)
    rows = []
    for i in range(48):
        a = rng.choice(SENTENCES)
        same = i % 2 == 0
        b = a if same else rng.choice([s for s in SENTENCES if s != a])
        rows.append(f"{int(same)}\t{i}\t{i + 1000}\t{a}\t{b}")
    header = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    files = {}
    for name, part in (("train", rows[:32]), ("dev", rows[32:40]), ("test", rows[40:])):
        files[name] = folder / f"{name}.tsv"
        files[name].write_text("\n".join([header, *part]) + "\n", encoding="utf-8")
    return files


def write_multilabel(folder: Path) -> dict[str, Path]:
    """JSONL whose labels are lists (an empty list is allowed)."""
    tags = {"movie": "film", "film": "film", "shares": "money", "market": "money", "great": "happy", "loved": "happy"}
    files = {}
    for name, part in (("train", SENTENCES * 3), ("dev", SENTENCES[:6]), ("test", SENTENCES[6:])):
        lines = [json.dumps({"text": s, "label": sorted({tags[w] for w in s.split() if w in tags})}) for s in part]
        files[name] = folder / f"{name}.jsonl"
        files[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def write_regression(folder: Path) -> dict[str, Path]:
    """STS-B's layout: sentence1, sentence2, score (word overlap times five)."""
    rng = random.Random(1)
    files = {}
    for name, count in (("train", 40), ("dev", 10), ("test", 10)):
        rows = ["sentence1,sentence2,score"]
        for _ in range(count):
            a, b = rng.choice(SENTENCES), rng.choice(SENTENCES)
            wa, wb = set(a.split()), set(b.split())
            rows.append(f'"{a}","{b}",{5 * len(wa & wb) / len(wa | wb):.2f}')
        files[name] = folder / f"{name}.csv"
        files[name].write_text("\n".join(rows) + "\n", encoding="utf-8")
    return files


def tagged_sentence(rng: random.Random, length: int) -> list[tuple[str, str]]:
    """Words with IOB1 tags: entity words come in runs of one or two of one type."""
    out: list[tuple[str, str]] = []
    while len(out) < length:
        if rng.random() < 0.3:
            kind = rng.choice(sorted(ENTITY_WORDS))
            out += [(rng.choice(ENTITY_WORDS[kind]), f"I-{kind}") for _ in range(rng.choice((1, 2)))]
        else:
            out.append((rng.choice(OTHER_WORDS), "O"))
    return out[:length]


def write_conll(folder: Path, long_sentence: bool = True) -> dict[str, Path]:
    """IOB1 CoNLL files (word POS chunk tag), with a -DOCSTART- line; one dev sentence is longer than a
    32-token window, holds a word of many pieces and a word the tokenizer drops (a zero-width space)."""
    rng = random.Random(2)
    files = {}
    for name, count in (("train", 40), ("dev", 8), ("test", 8)):
        blocks = ["-DOCSTART- -X- O O\n"]
        for i in range(count):
            words = tagged_sentence(rng, rng.randint(3, 9))
            if long_sentence and name != "train" and i == 0:
                words = tagged_sentence(rng, 30)
                words[5] = ("antidisestablishmentarianism", "O")
                words[9] = ("\u200b", "O")
            blocks.append("".join(f"{w} NN I-NP {t}\n" for w, t in words))
        files[name] = folder / f"{name}.conll"
        files[name].write_text("\n".join(blocks), encoding="utf-8")
    return files


def write_squad(folder: Path) -> dict[str, Path]:
    """SQuAD v1.1 JSON: contexts of 12-40 words, the answer a span of them; long contexts need windows."""
    rng = random.Random(3)
    files = {}
    for name, count in (("train", 30), ("dev", 8), ("test", 8)):
        paragraphs = []
        for i in range(count):
            words = [rng.choice(WORDS) for _ in range(rng.randint(12, 40))]
            first = rng.randrange(len(words) - 2)
            answer = " ".join(words[first : first + rng.choice((1, 2))])
            context = " ".join(words)
            start = len(" ".join(words[:first])) + (1 if first else 0)
            question = f"where is {words[first]} ?"
            qa = {"id": f"{name}-{i}", "question": question, "answers": [{"text": answer, "answer_start": start}]}
            paragraphs.append({"context": context, "qas": [qa]})
        files[name] = folder / f"{name}.json"
        data = {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}
        files[name].write_text(json.dumps(data), encoding="utf-8")
    return files


def task_overrides(task: str, folder: Path) -> list[str]:
    """Config overrides that point a run of ``task`` at its tiny files."""
    writers = {
        "classification": (write_pairs, ["data.glue=mrpc"]),
        "multilabel": (write_multilabel, []),
        "regression": (write_regression, ["data.glue=stsb"]),
        "tagging": (write_conll, ["head.type=bilstm-crf", "head.lstm_hidden=16"]),
        "qa": (write_squad, ["qa.stride=8", "qa.max_query_length=8"]),
    }
    write, extra = writers[task]
    files = write(folder)
    return [f"task={task}", *(f"data.{n}={p}" for n, p in files.items()), *extra]


def train_task_runs(tmp_path_factory, tiny_bert_dir: Path, tasks, prefix: str) -> dict[str, Path]:
    """A tiny trained run of each of ``tasks``: fine-tuned for classification (pairs), feature-based for
    the others (for the server's and the exporter's tests)."""
    from lmtransfer import load_config, train

    made = {}
    for task in tasks:
        folder = tmp_path_factory.mktemp(f"{prefix}-{task}")
        overrides = [
            *task_overrides(task, folder),
            f"encoder.model={tiny_bert_dir}",
            "encoder.max_length=32",
            f"strategy={'finetune' if task == 'classification' else 'feature'}",
            "train.epochs=1",
            "train.batch_size=8",
            f"cache_dir={folder / 'cache'}",
            f"output_dir={folder / 'run'}",
        ]
        made[task] = train(load_config(None, overrides), progress=False).directory
    return made
