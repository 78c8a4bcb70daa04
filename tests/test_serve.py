"""``lmtransfer serve``: every task's endpoint answers as ``predict`` does, batches give what one-by-one
gives, embeddings and features are the encoder's, bad requests get the 4xx that names them, overload a
503 at once, and neither hostile bodies nor a client that goes away hurt the others."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmtransfer.api import predict, prediction_row
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.features.pooling import hidden_states, pool_sentence, stack_layers
from lmtransfer.serve.app import Settings, build_app
from lmtransfer.serve.batcher import Batcher, QueueFull
from lmtransfer.serve.served import ServedEncoder, ServedRun
from tests.task_data import train_task_runs

pytestmark = pytest.mark.usefixtures("one_thread")

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
def test_each_tasks_endpoint_answers_as_predict_does(task, client, runs):
    response = client.post(f"/v1/predict/{task}", json={"inputs": INPUTS[task]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == task and body["task"] == task
    items = [as_predict_input(task, item) for item in INPUTS[task]]
    expected = [prediction_row(task, item, found) for item, found in zip(items, predict(runs[task], items))]
    assert body["outputs"] == json.loads(json.dumps(expected))  # the rows `lmtransfer predict` prints


def test_models_describe_each_run_and_encoder(client, runs):
    data = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert set(data) == {*INPUTS, "tiny"}
    run = data["classification"]
    assert run["kind"] == "run" and run["pairs"] and run["strategy"] == "finetune"
    assert run["labels"] == json.loads((runs["classification"] / "labels.json").read_text())
    assert run["metrics"]["dev"]["accuracy"] == pytest.approx(
        json.loads((runs["classification"] / "metrics.json").read_text())["dev"]["accuracy"]
    )
    assert len(run["encoder"]["weights_sha256"]) == 64
    assert data["tiny"]["kind"] == "encoder" and data["tiny"]["hidden_states"] == 3
    assert client.get("/health").json()["status"] == "ok"


def test_embeddings_are_the_encoders_mean_of_its_last_layer_at_length_one(client, tiny_bert_dir):
    texts = ["the movie was great", "shares fell in the market today"]
    response = client.post("/v1/embeddings", json={"input": texts, "model": "tiny"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "tiny"
    assert [d["index"] for d in body["data"]] == [0, 1] and {d["object"] for d in body["data"]} == {"embedding"}
    encoder = load_encoder(str(tiny_bert_dir)).freeze()
    for text, row in zip(texts, body["data"]):
        batch = encoder.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            states = hidden_states(encoder.model, dict(batch))
        expected = pool_sentence(stack_layers(states, [len(states) - 1]), batch["attention_mask"], "mean")[0, 0]
        expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
        np.testing.assert_allclose(row["embedding"], expected, atol=1e-5)
    assert body["usage"]["prompt_tokens"] == sum(len(encoder.tokenizer(t)["input_ids"]) for t in texts)
    # base64 (what OpenAI's client asks for): little-endian float32 of the same vectors; one text alone
    b64 = client.post("/v1/embeddings", json={"input": texts[0], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, body["data"][0]["embedding"], atol=1e-6)
    wrong = client.post("/v1/embeddings", json={"input": "x", "dimensions": 3})
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "dimensions"


def test_features_give_each_chosen_layer_pooled(client, tiny_bert_dir):
    response = client.post("/v1/features", json={"input": ["i loved it"], "layers": "all", "pooling": "max"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["layers"] == [0, 1, 2] and body["pooling"] == "max"
    encoder = load_encoder(str(tiny_bert_dir)).freeze()
    batch = encoder.tokenizer(["i loved it"], return_tensors="pt")
    with torch.inference_mode():
        states = hidden_states(encoder.model, dict(batch))
    expected = pool_sentence(stack_layers(states, [0, 1, 2]), batch["attention_mask"], "max")[0].numpy()
    np.testing.assert_allclose(body["data"][0]["features"], expected, atol=1e-5)
    bad = client.post("/v1/features", json={"input": ["x"], "layers": [7]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "layers"


def test_batched_requests_get_what_one_by_one_gives(served):
    """Concurrent requests share batches (fewer batches than requests), and each gets its own answer:
    the labels of a one-by-one call, and probabilities equal but for float rounding."""
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
    app = build_app(*served, Settings(max_wait_ms=300))
    with TestClient(app) as single:
        alone = [single.post("/v1/predict/multilabel", json={"inputs": [t]}).json()["outputs"][0] for t in texts]
        alone_vectors = [single.post("/v1/embeddings", json={"input": t}).json()["data"][0] for t in texts]
    batchers = app.state.batchers
    with live_server(app) as url:

        async def ask():
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                rows = [http.post("/v1/predict/multilabel", json={"inputs": [t]}) for t in texts]
                vectors = [http.post("/v1/embeddings", json={"input": t}) for t in texts]
                return await asyncio.gather(*rows), await asyncio.gather(*vectors)

        before = batchers["run", "multilabel"].batches
        rows, vectors = asyncio.run(ask())
        ran = batchers["run", "multilabel"].batches - before
    assert ran < len(texts), f"{len(texts)} concurrent requests ran in {ran} batches"
    for response, expected in zip(rows, alone):
        got = response.json()["outputs"][0]
        assert got["labels"] == expected["labels"] and got["text"] == expected["text"]
        assert got["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
    for response, expected in zip(vectors, alone_vectors):
        assert response.json()["data"][0]["embedding"] == pytest.approx(expected["embedding"], abs=1e-5)


def test_bad_requests_get_the_4xx_that_names_them(served):
    app = build_app(*served, Settings(api_key="s3cret", max_inputs=4, max_body_bytes=2000))
    with TestClient(app) as client:
        ok = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/predict/multilabel", json={"inputs": ["x"]}).status_code == 401
        wrong = client.post("/v1/predict/multilabel", json={"inputs": ["x"]}, headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert client.get("/health").status_code == 200  # open, for load balancers
        missing = client.post("/v1/predict/nothing", json={"inputs": ["x"]}, headers=ok)
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "run"
        many = client.post("/v1/predict/multilabel", json={"inputs": ["x"] * 5}, headers=ok)
        assert many.status_code == 413 and many.json()["error"]["field"] == "inputs"
        big = client.post("/v1/predict/multilabel", json={"inputs": ["x" * 3000]}, headers=ok)
        assert big.status_code == 413
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


def test_a_full_queue_is_answered_503_at_once(served, monkeypatch):
    runs, encoders = served
    slow = runs[1]  # multilabel
    real = slow.work

    def work(items):
        time.sleep(0.6)
        return real(items)

    monkeypatch.setattr(slow, "work", work)
    app = build_app([slow], encoders, Settings(max_queue=1, max_wait_ms=0))
    with live_server(app) as url:

        async def crowd():
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                first = asyncio.ensure_future(http.post("/v1/predict/multilabel", json={"inputs": ["a"]}))
                await asyncio.sleep(0.2)  # running now: the queue is empty again
                second = asyncio.ensure_future(http.post("/v1/predict/multilabel", json={"inputs": ["b"]}))
                await asyncio.sleep(0.1)  # waiting: the queue is full
                start = time.monotonic()
                third = await http.post("/v1/predict/multilabel", json={"inputs": ["c"]})
                refused_in = time.monotonic() - start
                return await first, await second, third, refused_in

        first, second, third, refused_in = asyncio.run(crowd())
    assert first.status_code == 200 and second.status_code == 200
    assert third.status_code == 503 and third.headers["retry-after"] == "1"
    assert refused_in < 0.3, f"the 503 took {refused_in:.3f} s"


def test_a_batch_broken_by_one_request_fails_only_that_request():
    async def scenario():
        def work(items):
            if "bad" in items:
                raise ValueError("bad input")
            return [item.upper() for item in items]

        from concurrent.futures import ThreadPoolExecutor

        batcher = Batcher(work, max_wait=0.05, max_queue=10)
        batcher.start(ThreadPoolExecutor(1))
        results = await asyncio.gather(
            batcher.submit(["a", "b"], [1, 1]), batcher.submit(["bad"], [1]), batcher.submit(["c"], [1]),
            return_exceptions=True,
        )  # fmt: skip
        with pytest.raises(QueueFull):
            await asyncio.gather(*(batcher.submit(["x"] * 4, [1] * 4) for _ in range(3)))
        await batcher.stop()
        return results

    ok, bad, also_ok = asyncio.run(scenario())
    assert ok == ["A", "B"] and also_ok == ["C"] and isinstance(bad, ValueError)


def test_a_client_that_goes_away_does_not_stall_the_others(served):
    app = build_app(*served, Settings(max_wait_ms=200))
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
        start = time.monotonic()
        response = httpx.post(f"{url}/v1/predict/multilabel", json={"inputs": ["shares fell"]}, timeout=10)
        assert response.status_code == 200
        assert time.monotonic() - start < 5
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


def test_sigterm_finishes_the_request_in_flight_and_exits_0(runs, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "lmtransfer", "--threads", "1", "serve", f"multilabel={runs['multilabel']}"]
    command += ["--port", str(port), "--max-wait-ms", "1500", "--no-access-log"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        answer = {}

        def ask():
            answer["r"] = httpx.post(f"{url}/v1/predict/multilabel", json={"inputs": ["a"]}, timeout=30)

        thread = threading.Thread(target=ask)
        thread.start()
        time.sleep(0.5)  # the request waits in its batch for 1.5 s
        server.send_signal(signal.SIGTERM)
        thread.join(30)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
    assert answer["r"].status_code == 200 and answer["r"].json()["outputs"][0]["text"] == "a"


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
