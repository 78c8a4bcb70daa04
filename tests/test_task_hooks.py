"""Every task decides its own behaviour: each hook of each task (the CLI's inputs, the server's body, the
printed row, the card's pipeline tag and example, the bag-of-words baseline), with the answers written out."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from lmtransfer import load_config
from lmtransfer.core.errors import ConfigError
from lmtransfer.tasks.table import TASKS, task_for

PAIR = ["data.text_pair_column=text_pair"]
# (task, overrides): every task, and the whole-text tasks on pairs too
CASES = {
    "classification": ("classification", []),
    "classification-pairs": ("classification", PAIR),
    "multilabel": ("multilabel", []),
    "regression": ("regression", []),
    "regression-pairs": ("regression", PAIR),
    "tagging": ("tagging", []),
    "qa": ("qa", []),
}
# what each case's hooks must answer
PIPELINE_TAG = {
    "classification": "text-classification",
    "classification-pairs": "text-classification",
    "multilabel": "text-classification",
    "regression": "text-classification",
    "regression-pairs": "text-classification",
    "tagging": "token-classification",
    "qa": "question-answering",
}
ARGUMENT = {
    "classification": ("The film was a delight.", "The film was a delight."),
    "classification-pairs": (
        "A man is playing a guitar.\tSomeone plays music.",
        ("A man is playing a guitar.", "Someone plays music."),
    ),
    "multilabel": ("The film was a delight.", "The film was a delight."),
    "regression": ("The film was a delight.", "The film was a delight."),
    "regression-pairs": (
        "A man is playing a guitar.\tSomeone plays music.",
        ("A man is playing a guitar.", "Someone plays music."),
    ),
    "tagging": ("Shares of Acme rose in London", "Shares of Acme rose in London"),
    "qa": (
        '{"question": "Who rose?", "context": "Shares of Acme rose in London."}',
        {"question": "Who rose?", "context": "Shares of Acme rose in London."},
    ),
}
FOUND = {"label": "x", "probabilities": {"x": 1.0}}
ROW = {
    "classification": {"text": "The film was a delight.", **FOUND},
    "classification-pairs": {"text": "A man is playing a guitar.", "text_pair": "Someone plays music.", **FOUND},
    "multilabel": {"text": "The film was a delight.", **FOUND},
    "regression": {"text": "The film was a delight.", **FOUND},
    "regression-pairs": {"text": "A man is playing a guitar.", "text_pair": "Someone plays music.", **FOUND},
    "tagging": {"words": ["Shares", "of", "Acme", "rose", "in", "London"], "tags": FOUND},
    "qa": {"question": "Who rose?", "context": "Shares of Acme rose in London.", **FOUND},
}
# a body that each case's server model refuses, and the field it names
BAD_BODY = {
    "classification": ({"inputs": [["a", "b"]]}, ("inputs", 0)),
    "classification-pairs": ({"inputs": ["a lone text"]}, ("inputs", 0)),
    "multilabel": ({"inputs": []}, ("inputs",)),
    "regression": ({"inputs": "not a list"}, ("inputs",)),
    "regression-pairs": ({"inputs": [{"text": "a"}]}, ("inputs", 0)),
    "tagging": ({"inputs": ["   "]}, ("inputs", 0)),
    "qa": ({"inputs": [{"question": "q"}]}, ("inputs", 0, "context")),
}
BAG_OF_WORDS_SHAPE = {  # (weight, bias) for 3 labels (or scores) over 4 features; None: refused
    "classification": ((3, 4), (3,)),
    "classification-pairs": ((3, 4), (3,)),
    "multilabel": ((3, 4), (3,)),
    "regression": ((1, 4), (1,)),
    "regression-pairs": ((1, 4), (1,)),
    "tagging": None,
    "qa": None,
}


def test_the_cases_cover_every_task():
    assert {task for task, _ in CASES.values()} == set(TASKS)


@pytest.fixture(params=list(CASES))
def case(request):
    task, extra = CASES[request.param]
    return request.param, task_for(load_config(None, [f"task={task}", *extra]))


def test_card_metadata_and_example(case):
    name, task = case
    assert task.pipeline_tag == PIPELINE_TAG[name]
    assert task.example_argument() == ARGUMENT[name][0]


def test_command_line_inputs_parse_and_print(case):
    name, task = case
    argument, item = ARGUMENT[name]
    assert task.parse_argument(argument) == item
    assert len(task.parse([item])) == 1
    assert task.prediction_row(item, FOUND) == ROW[name]


def test_a_pair_task_refuses_a_single_text_on_the_command_line(case):
    name, task = case
    if name.endswith("-pairs"):
        with pytest.raises(ValueError, match="joined by a tab"):
            task.parse_argument("no tab here")
    elif name == "qa":
        with pytest.raises(ValueError, match="JSON objects with question and context"):
            task.parse_argument("not json")
    else:
        assert task.parse_argument("no tab here") == "no tab here"


def test_server_body(case):
    name, task = case
    _argument, item = ARGUMENT[name]
    body = task.request_model().model_validate({"inputs": [item if not isinstance(item, tuple) else list(item)]})
    assert body.items() == [item | {"id": "0"} if isinstance(item, dict) else item]  # a question gets its place
    bad, field = BAD_BODY[name]
    with pytest.raises(ValidationError) as caught:
        task.request_model().model_validate(bad)
    assert caught.value.errors()[0]["loc"][: len(field)] == field


def test_bag_of_words_baseline_fits_or_refuses(case):
    name, task = case
    x = sp.csr_matrix(np.eye(6, 4, dtype=np.float32))
    targets = {
        "multilabel": np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]] * 2, dtype=np.float32),
        "regression": np.linspace(0, 1, 6, dtype=np.float32),
    }.get(task.name, np.array([0, 1, 2] * 2))
    expected = BAG_OF_WORDS_SHAPE[name]
    if expected is None:
        with pytest.raises(ConfigError, match=f"does not do task '{task.name}'") as caught:
            task.fit_bag_of_words(x, targets, seed=0)
        assert caught.value.field == "encoder.model"
        return
    weight, bias = task.fit_bag_of_words(x, targets, seed=0)
    assert (weight.shape, bias.shape) == expected
