"""``lmtransfer serve``: every task's endpoint answers with the rows ``predict`` prints, batches give what
one-by-one gives, embeddings and features are the encoder's, bad requests get the 4xx that names them,
overload a 503 at once, and neither hostile bodies nor a client that goes away hurt the others.

Nothing here waits a fixed time or bounds one: where the order of events matters, a test holds the model
thread (the ``held`` fixture) and lets it go once the queue holds what the test needs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoModel, AutoTokenizer

from lmtransfer.cli.serve import serve_command
from lmtransfer.serve.app import build_app
from lmtransfer.serve.batcher import Batcher, QueueFull, QueueLimit
from lmtransfer.serve.served import ServedEncoder, ServedRun
from lmtransfer.serve.settings import Settings
from tests.task_data import train_task_runs

pytestmark = pytest.mark.usefixtures("one_thread")

HANG = 60  # seconds after which a wait that should end at once is a failure, not a timing bound

INPUTS = {
    "classification": [
        {"text": "the movie was great", "text_pair": "the movie was great"},
        ["shares fell", "i loved it"],
        {"text": "news of the day", "text_pair": "a good day for sport"},
    ],
    "multilabel": ["the movie was great", "shares fell", "market news"],
    "regression": [["the movie was great", "the film was awful"], {"text": "shares fell", "text_pair": "shares fell"}],
    "tagging": ["the market rose", ["news", "of", "the", "day"], "shares rose in the market today"],
    "qa": [
        {"question": "where is rose ?", "context": "shares rose in the market"},
        {"question": "what fell ?", "context": "the news of the day : shares fell again and again", "id": "q2"},
    ],
}


def as_predict_input(task: str, item):
    """What the Python API's ``predict`` takes for a JSON input (pairs as tuples)."""
    if task in ("classification", "regression"):
        return (item["text"], item["text_pair"]) if isinstance(item, dict) else tuple(item)
    return item


# What the tiny runs (seeded, so always the same) answer for INPUTS: the rows `lmtransfer predict` prints.
OUTPUTS = {
    "classification": [
        {"text": "the movie was great", "text_pair": "the movie was great", "label": "0",
         "probabilities": {"0": 0.524235, "1": 0.475764}},
        {"text": "shares fell", "text_pair": "i loved it", "label": "1",
         "probabilities": {"0": 0.453471, "1": 0.546529}},
        {"text": "news of the day", "text_pair": "a good day for sport", "label": "0",
         "probabilities": {"0": 0.508852, "1": 0.491148}},
    ],
    "multilabel": [
        {"text": "the movie was great", "labels": ["film"],
         "probabilities": {"film": 0.502616, "happy": 0.443689, "money": 0.107289}},
        {"text": "shares fell", "labels": ["money"],
         "probabilities": {"film": 0.090418, "happy": 0.118727, "money": 0.508091}},
        {"text": "market news", "labels": ["money"],
         "probabilities": {"film": 0.062277, "happy": 0.096948, "money": 0.695071}},
    ],
    "regression": [
        {"text": "the movie was great", "text_pair": "the film was awful", "score": 0.118318},
        {"text": "shares fell", "text_pair": "shares fell", "score": 0.60936},
    ],
    "tagging": [
        {"words": ["the", "market", "rose"], "tags": ["O", "I-ORG", "I-PER"]},
        {"words": ["news", "of", "the", "day"], "tags": ["I-ORG", "O", "O", "O"]},
        {"words": ["shares", "rose", "in", "the", "market", "today"], "tags": ["O", "I-PER", "O", "O", "I-ORG", "O"]},
    ],
    "qa": [
        {"question": "where is rose ?", "context": "shares rose in the market", "id": "0", "answer": "the market",
         "start": 15, "end": 25, "score": 0.176448},
        {"question": "what fell ?", "context": "the news of the day : shares fell again and again", "id": "q2",
         "answer": "n", "start": 38, "end": 39, "score": 0.546358},
    ],
}  # fmt: skip


def close(got, expected) -> bool:
    """``got`` is ``expected`` but for float rounding (1e-4), however deeply nested."""
    if isinstance(expected, float):
        return isinstance(got, float) and math.isclose(got, expected, abs_tol=1e-4)
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(close(got[k], expected[k]) for k in got)
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(close, got, expected))
    return got == expected


@pytest.fixture
def held(monkeypatch):
    """``held(served)`` makes ``served``'s batches wait in the model thread until the test sets ``release``;
    ``started`` is set when a batch begins, and ``batches`` records each batch's inputs. Call it before
    ``build_app``. Whatever is still held is let go when the test ends, passed or failed."""
    releases = []

    def hold(served: ServedRun | ServedEncoder) -> tuple[threading.Event, threading.Event, list[list]]:
        started, release, batches = threading.Event(), threading.Event(), []
        real = served.work

        def work(items):
            batches.append(list(items))
            started.set()
            assert release.wait(HANG), "the test never let the batch go"
            return real(items)

        monkeypatch.setattr(served, "work", work)
        releases.append(release)
        return started, release, batches

    yield hold
    for release in releases:
        release.set()


async def until(condition: Callable[[], bool]) -> None:
    """Return as soon as ``condition()`` holds (checked between turns of the event loop)."""
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(0.005)


def run_named(served, name: str) -> ServedRun:
    return next(run for run in served[0] if run.name == name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert_dir) -> dict[str, Path]:
    """A trained tiny run of every task (feature-based; fine-tuned for classification)."""
    return train_task_runs(tmp_path_factory, tiny_bert_dir, INPUTS, "serve")


@pytest.fixture(scope="module")
def served(runs, tiny_bert_dir):
    served_runs = [ServedRun.load(task, folder) for task, folder in runs.items()]
    return served_runs, [ServedEncoder.load("tiny", str(tiny_bert_dir))]


@pytest.fixture(scope="module")
def client(served):
    with TestClient(build_app(*served)) as test_client:
        yield test_client


@contextlib.contextmanager
def live_server(app):
    """``app`` on uvicorn in a thread, on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("task", list(INPUTS))
def test_each_tasks_endpoint_answers_with_predicts_rows(task, client):
    response = client.post(f"/v1/predict/{task}", json={"inputs": INPUTS[task]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() == {"model", "task", "outputs"} and body["model"] == task and body["task"] == task
    assert close(body["outputs"], OUTPUTS[task]), body["outputs"]


def test_models_describe_each_run_and_encoder(client):
    data = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert set(data) == {"classification", "multilabel", "regression", "tagging", "qa", "tiny"}
    run = data["classification"]
    assert run["kind"] == "run" and run["pairs"] is True and run["strategy"] == "finetune"
    assert run["labels"] == ["0", "1"] and data["multilabel"]["labels"] == ["film", "happy", "money"]
    assert run["metrics"]["dev"]["accuracy"] == 0.75 and run["metrics"]["test"]["accuracy"] == 0.5
    assert len(run["encoder"]["weights_sha256"]) == 64
    assert data["tiny"]["kind"] == "encoder" and data["tiny"]["hidden_states"] == 3
    assert data["tiny"]["hidden_size"] == 32 and data["tiny"]["max_length"] == 64
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["queued"] == 0
    assert health["models"] == ["classification", "multilabel", "qa", "regression", "tagging", "tiny"]


def reference_states(tiny_bert_dir, text: str) -> list[np.ndarray]:
    """Each hidden state of ``text``, (T, H), from transformers itself: the oracle for the encoder routes."""
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_bert_dir), AutoModel.from_pretrained(tiny_bert_dir)
    with torch.inference_mode():
        out = model(**tokenizer([text], return_tensors="pt"), output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states]


def test_embeddings_are_the_encoders_mean_of_its_last_layer_at_length_one(client, tiny_bert_dir):
    texts = ["the movie was great", "shares fell in the market today"]
    response = client.post("/v1/embeddings", json={"input": texts, "model": "tiny"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() == {"object", "data", "model", "usage"} and body["object"] == "list" and body["model"] == "tiny"
    assert [(d["object"], d["index"], len(d["embedding"])) for d in body["data"]] == [
        ("embedding", 0, 32),
        ("embedding", 1, 32),
    ]
    assert body["usage"] == {"prompt_tokens": 17, "total_tokens": 17}
    for text, row in zip(texts, body["data"]):
        mean = reference_states(tiny_bert_dir, text)[-1].mean(axis=0)
        np.testing.assert_allclose(row["embedding"], mean / np.linalg.norm(mean), atol=1e-5)
        assert math.isclose(np.linalg.norm(row["embedding"]), 1.0, abs_tol=1e-5)
    # base64 (what OpenAI's client asks for): little-endian float32 of the same vectors; one text alone
    b64 = client.post("/v1/embeddings", json={"input": texts[0], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, body["data"][0]["embedding"], atol=1e-6)
    wrong = client.post("/v1/embeddings", json={"input": "x", "dimensions": 3})
    assert wrong.status_code == 422
    assert wrong.json() == error("tiny gives 32-dimensional embeddings only", "dimensions")


def test_features_give_each_chosen_layer_pooled(client, tiny_bert_dir):
    response = client.post("/v1/features", json={"input": ["i loved it"], "layers": "all", "pooling": "max"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["layers"] == [0, 1, 2] and body["pooling"] == "max" and body["usage"]["prompt_tokens"] == 5
    expected = [state.max(axis=0) for state in reference_states(tiny_bert_dir, "i loved it")]
    np.testing.assert_allclose(body["data"][0]["features"], expected, atol=1e-5)
    bad = client.post("/v1/features", json={"input": ["x"], "layers": [7]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "layers"


def test_batched_requests_get_what_one_by_one_gives(served, held):
    """Requests that wait together share one batch, and each gets its own answer: the labels of a one-by-one
    call, and probabilities and vectors equal but for float rounding. The model thread is held on a first
    request until all the others wait, so the batches are the same however busy the machine is."""
    texts = [
        "the movie was great",
        "shares fell",
        "i hated the film",
        "a good day for sport and for the market news of the day",
        "not good",
        "market news",
        "the film was awful",
        "great acting, great plot!",
    ]
    with TestClient(build_app(*served)) as single:
        alone = [single.post("/v1/predict/multilabel", json={"inputs": [t]}).json()["outputs"][0] for t in texts]
        alone_vectors = [single.post("/v1/embeddings", json={"input": t}).json()["data"][0] for t in texts]
    run_held = held(run_named(served, "multilabel"))
    encoder_held = held(served[1][0])
    app = build_app(*served, Settings(max_wait_ms=0))
    queue = app.state.server.queue
    with live_server(app) as url:

        async def together(path: str, bodies: list[dict], hold) -> list[httpx.Response]:
            """A first request holds the model thread; the others are sent, and let go once all wait."""
            started, release, _ = hold
            async with httpx.AsyncClient(base_url=url, timeout=HANG) as http:
                first = asyncio.ensure_future(http.post(path, json=bodies[0]))
                await asyncio.to_thread(started.wait, HANG)
                others = [asyncio.ensure_future(http.post(path, json=body)) for body in bodies[1:]]
                await until(lambda: queue.waiting == len(others))
                release.set()
                return [await first, *await asyncio.gather(*others)]

        rows = asyncio.run(together("/v1/predict/multilabel", [{"inputs": [t]} for t in ["first", *texts]], run_held))
        vectors = asyncio.run(together("/v1/embeddings", [{"input": t} for t in ["first", *texts]], encoder_held))
    for _, _, batches in (run_held, encoder_held):
        assert len(batches) == 2 and len(batches[0]) == 1 and len(batches[1]) == len(texts)
    assert sorted(run_held[2][1]) == sorted(texts)
    rows, vectors = rows[1:], vectors[1:]
    for response, text, expected in zip(rows, texts, alone):
        got = response.json()["outputs"][0]
        assert got["text"] == text and got["labels"] == expected["labels"]
        assert got["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
    for response, expected in zip(vectors, alone_vectors):
        assert response.json()["data"][0]["embedding"] == pytest.approx(expected["embedding"], abs=1e-5)


def error(message: str, field: str | None, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "field": field}}


def test_bad_requests_get_the_4xx_that_names_them(served):
    app = build_app(*served, Settings(api_key="s3cret", max_inputs=4, max_body_bytes=2000))
    with TestClient(app) as client:
        ok = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/predict/multilabel", json={"inputs": ["x"]}).status_code == 401
        wrong = client.post("/v1/predict/multilabel", json={"inputs": ["x"]}, headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert wrong.json() == error(
            "a valid API key is needed: Authorization: Bearer <key>", "authorization", "auth_error"
        )
        assert client.get("/health").status_code == 200  # open, for load balancers
        missing = client.post("/v1/predict/nothing", json={"inputs": ["x"]}, headers=ok)
        served_runs = "['classification', 'multilabel', 'qa', 'regression', 'tagging']"
        assert missing.status_code == 404
        assert missing.json() == error(f"no run 'nothing' is served (served: {served_runs})", "run")
        many = client.post("/v1/predict/multilabel", json={"inputs": ["x"] * 5}, headers=ok)
        assert many.status_code == 413 and many.json() == error("5 inputs in one request; the most is 4", "inputs")
        big = client.post("/v1/predict/multilabel", json={"inputs": ["x" * 3000]}, headers=ok)
        assert big.status_code == 413 and big.json() == error("the body is over 2000 bytes", "body")
        cases = {
            "qa": ({"inputs": [{"question": "q"}]}, "inputs.0.context"),
            "multilabel": ({"inputs": [3]}, "inputs.0"),
            "tagging": ({"inputs": ["   "]}, "inputs.0"),
            "classification": ({"inputs": ["only one text"]}, "inputs.0"),
            "regression": ({"texts": ["a"]}, "inputs"),
        }
        for run, (body, field) in cases.items():
            response = client.post(f"/v1/predict/{run}", json=body, headers=ok)
            assert response.status_code == 422, (run, response.text)
            assert response.json()["error"]["field"] == field, (run, response.json())
        broken = client.post("/v1/predict/multilabel", content=b'{"inputs": [', headers=ok)
        assert broken.status_code == 422
        surrogate = client.post("/v1/embeddings", content=b'{"input": "\\ud800"}', headers=ok)  # not UTF-8 text
        assert surrogate.status_code == 422 and "JSON" in surrogate.json()["error"]["message"]


def test_a_full_queue_is_answered_503_at_once(served, held):
    """With the model thread held, one input running and one waiting in a queue of 2: a request of two
    inputs is refused (by the batcher), one more input is taken, and then a request of one is refused (by
    the gate, before its body is parsed). Both refusals come while the model is still held: at once."""
    started, release, batches = held(run_named(served, "multilabel"))
    app = build_app([run_named(served, "multilabel")], served[1], Settings(max_queue=2, max_wait_ms=0))
    queue = app.state.server.queue
    with live_server(app) as url:

        async def crowd():
            async with httpx.AsyncClient(base_url=url, timeout=HANG) as http:

                def ask(*texts):
                    return asyncio.ensure_future(http.post("/v1/predict/multilabel", json={"inputs": list(texts)}))

                first = ask("a")
                await asyncio.to_thread(started.wait, HANG)  # running: the queue is empty again
                second = ask("b")
                await until(lambda: queue.waiting == 1)
                too_many = await ask("c", "d")
                third = ask("e")
                await until(lambda: queue.waiting == 2)
                full = await ask("f")
                held_meanwhile = not release.is_set()
                release.set()
                return [await first, await second, await third], too_many, full, held_meanwhile

        answered, too_many, full, held_meanwhile = asyncio.run(crowd())
    assert held_meanwhile
    assert [r.status_code for r in answered] == [200, 200, 200]
    assert [r.json()["outputs"][0]["text"] for r in answered] == ["a", "b", "e"]
    assert batches == [["a"], ["b", "e"]]
    for refused, waiting in ((too_many, 1), (full, 2)):
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        busy = f"the server is busy ({waiting} inputs are waiting); try again shortly"
        assert refused.json() == error(busy, None, "overloaded")


def test_a_batch_broken_by_one_request_fails_only_that_request():
    """Requests submitted in one turn of the event loop all wait when the batcher next runs, so they make
    one batch; one that would take the queue past its limit is refused, and the others still run."""
    calls = []

    def work(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("bad input")
        return [item.upper() for item in items]

    async def scenario():
        from concurrent.futures import ThreadPoolExecutor

        batcher = Batcher(work, max_wait=0, queue=QueueLimit(10))
        batcher.start(ThreadPoolExecutor(1))
        broken = await asyncio.gather(
            batcher.submit(["a", "b"], [1, 1]), batcher.submit(["bad"], [1]), batcher.submit(["c"], [1]),
            return_exceptions=True,
        )  # fmt: skip
        crowded = await asyncio.gather(*(batcher.submit(["x"] * 4, [1] * 4) for _ in range(3)), return_exceptions=True)
        await batcher.stop()
        return broken, crowded

    (ok, bad, also_ok), (x1, x2, refused) = asyncio.run(scenario())
    assert ok == ["A", "B"] and also_ok == ["C"] and isinstance(bad, ValueError)
    assert calls[:4] == [["a", "b", "bad", "c"], ["a", "b"], ["bad"], ["c"]]  # together, then each alone
    assert x1 == x2 == ["X"] * 4 and calls[4:] == [["x"] * 8]
    assert isinstance(refused, QueueFull) and str(refused) == "8 inputs are waiting"


def test_a_client_that_goes_away_does_not_stall_the_others(served):
    app = build_app(*served)
    with live_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        body = json.dumps({"inputs": ["the movie was great"] * 3}).encode()
        for _ in range(3):  # requests whose clients hang up before the answer, and one cut mid-body
            with socket.create_connection((host, int(port))) as raw:
                raw.sendall(
                    b"POST /v1/predict/multilabel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(b'POST /v1/predict/multilabel HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"inp')
        response = httpx.post(f"{url}/v1/predict/multilabel", json={"inputs": ["shares fell"]}, timeout=HANG)
        assert response.status_code == 200 and response.json()["outputs"][0]["text"] == "shares fell"
        assert httpx.get(f"{url}/health").json()["queued"] == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["inputs", "input", "text", "text_pair", "question", "context", "layers", "model", "pooling"])
BODIES = JSON | st.dictionaries(FIELDS, JSON, max_size=3) | st.builds(lambda v: {"inputs": v}, JSON)
PATHS = [f"/v1/predict/{task}" for task in INPUTS] + ["/v1/embeddings", "/v1/features"]


@settings(max_examples=int(os.environ.get("LMTRANSFER_FUZZ_SERVE", 60)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(body=BODIES, path=st.sampled_from(PATHS))
def test_generated_bodies_never_get_a_5xx(client, body, path):
    response = client.post(path, content=json.dumps(body).encode())
    assert response.status_code < 500, (path, body, response.text)
    if response.status_code >= 400:
        assert response.json()["error"]["message"]


# ``lmtransfer serve`` with each run's batches held until the file argv[2] exists; argv[1] is made when one
# starts. The test decides when the request in flight may finish: after the server has begun to shut down.
HELD_SERVER = """
import sys, time
from pathlib import Path
from lmtransfer.cli.main import main
from lmtransfer.serve.served import ServedRun

started, release = Path(sys.argv[1]), Path(sys.argv[2])
real = ServedRun.work

def work(self, items):
    started.touch()
    while not release.exists():
        time.sleep(0.01)
    return real(self, items)

ServedRun.work = work
sys.argv = ["lmtransfer", *sys.argv[3:]]
main()
"""


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_finishes_the_request_in_flight_and_exits_0(runs, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started, release = tmp_path / "started", tmp_path / "release"
    command = [sys.executable, "-c", HELD_SERVER, str(started), str(release), "--threads", "1", "serve"]
    command += [f"multilabel={runs['multilabel']}", "--port", str(port), "--no-access-log"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    def wait_for(condition, what: str) -> None:
        deadline = time.monotonic() + 120
        while not condition():
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    def healthy() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        return False

    try:
        wait_for(healthy, "the server did not come up")
        answer = {}
        thread = threading.Thread(
            target=lambda: answer.update(
                r=httpx.post(f"{url}/v1/predict/multilabel", json={"inputs": ["a"]}, timeout=HANG)
            )
        )
        thread.start()
        wait_for(started.exists, "the request never reached the model")
        server.send_signal(signal.SIGTERM)
        wait_for(lambda: refused(port), "the server never stopped taking connections")
        release.touch()  # only now may the request in flight finish
        thread.join(HANG)
        assert server.wait(HANG) == 0
    finally:
        if server.poll() is None:
            server.kill()
    assert answer["r"].status_code == 200 and answer["r"].json()["outputs"][0]["text"] == "a"


def test_the_serve_commands_defaults_are_the_servers():
    defaults = {option.name: option.default for option in serve_command.params}
    limits = ("max_batch_tokens", "max_wait_ms", "max_queue", "max_inputs", "max_body_bytes", "max_length")
    assert {name: defaults[name] for name in limits} == {
        "max_batch_tokens": 16384,
        "max_wait_ms": 5.0,
        "max_queue": 1024,
        "max_inputs": 256,
        "max_body_bytes": 4 * 1024 * 1024,
        "max_length": 256,
    }
    assert Settings() == Settings(**{name: defaults[name] for name in limits[:-1]})


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f"}, "float32"),
        ({"avx2", "avx512_bf16"}, "bfloat16"),
        ({"amx_bf16"}, "bfloat16"),
        (set(), "float32"),
    ],
)
def test_compute_auto_is_bfloat16_only_where_the_cpu_has_it(flags, expected, monkeypatch):
    from lmtransfer.core import devices

    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    assert devices.auto_compute("cpu") == expected
