"""Load on ``lmtransfer serve``, on loopback only: requests/s and p50/p95/p99 latency at several
concurrencies, one SST-2 dev sentence per request, for a trained run (``/v1/predict``) and for
``/v1/embeddings``; against the same server with batching off and against infinity-emb serving the same
MiniLM, in one invocation. Then RSS over a long soak, and how fast an overloaded server says 503.

    python benchmarks/serve.py                                 # everything (about 15 minutes on 2 cores)
    python benchmarks/serve.py --levels 1 32 --seconds 10      # a quicker look
    python benchmarks/serve.py --table                         # the tables of benchmarks/results/serve.jsonl

Servers run one at a time, each in its own process; the load generator shares the machine's cores.
It is a plain asyncio HTTP/1.1 client on keep-alive connections, written here because httpx and aiohttp
spend more CPU per request than the servers under test on 2 cores would leave them. Infinity pins older
transformers and numpy, so it runs from a venv of its own (--infinity, default /work/infinity-venv):
    python -m venv /work/infinity-venv && /work/infinity-venv/bin/pip install torch==2.13.0 "infinity-emb[server,torch]"
Needs ../shared/data/sst2 and a trained run (default: configs/bbc.yaml trained into runs/bench-serve-bbc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import cpu

ROOT = Path(__file__).resolve().parents[1]
LMTRANSFER = str(Path(sys.executable).parent / "lmtransfer")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_bytes(path: str, body: dict, key: str | None = None) -> bytes:
    data = json.dumps(body).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}"
    return (head + f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    status = int((await reader.readline()).split()[1])
    length, chunked, close = None, False, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if chunked:
        body = b""
        while (size := int((await reader.readline()).strip(), 16)) > 0:
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    else:
        body = await reader.readexactly(length or 0)
    return status, body, close


async def load(port: int, payloads: list[bytes], concurrency: int, requests: int, seconds: float) -> dict:
    """``requests`` requests (or as many as ``seconds`` allow) over ``concurrency`` keep-alive connections."""
    latencies, statuses, sent = [], {}, 0
    deadline = time.perf_counter() + seconds

    async def connection():
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while sent < requests and time.perf_counter() < deadline:
                payload = payloads[sent % len(payloads)]
                sent += 1
                start = time.perf_counter()
                writer.write(payload)
                await writer.drain()
                status, _, close = await _read_response(reader)
                latencies.append((time.perf_counter() - start, status))
                statuses[status] = statuses.get(status, 0) + 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    ok = np.array([t for t, s in latencies if s == 200]) * 1000
    refused = np.array([t for t, s in latencies if s == 503]) * 1000
    row = {
        "concurrency": concurrency,
        "requests": len(latencies),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(ok) / wall, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500 and k != 503),
    }
    if len(ok):
        row.update({f"p{q}_ms": round(float(np.percentile(ok, q)), 1) for q in (50, 95, 99)})
    if len(refused):
        row.update({f"refused_p{q}_ms": round(float(np.percentile(refused, q)), 1) for q in (50, 99)})
    return row


class Server:
    """A server process started for the benchmark, up once its health answers; SIGTERM at the end."""

    def __init__(self, command: list[str], port: int, health: str, env: dict | None = None) -> None:
        self.port, self.command = port, command
        self.log = open(ROOT / "benchmarks" / "results" / f".serve-{port}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: see {self.log.name}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {health} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if b" 200 " in s.recv(100):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not come up in 300 s")
            time.sleep(0.5)

    def rss(self) -> int:
        proc = psutil.Process(self.process.pid)
        return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return -9
        finally:
            self.log.close()


def trained_run(path: Path) -> Path:
    if (path / "model.safetensors").is_file():
        return path
    print(f"training configs/bbc.yaml into {path} (the demo's feature-based run)", flush=True)
    subprocess.run([LMTRANSFER, "train", "configs/bbc.yaml", "-q", "--set", f"output_dir={path}"], cwd=ROOT, check=True)
    return path


def sweep(server: Server, name: str, endpoints: dict[str, list[bytes]], args, rows: list[dict]) -> None:
    for endpoint, payloads in endpoints.items():
        asyncio.run(load(server.port, payloads, 4, 64, 30))  # warm-up: threads, allocator, caches
        for level in args.levels:
            row = asyncio.run(load(server.port, payloads, level, args.requests, args.seconds))
            row.update({"server": name, "endpoint": endpoint})
            rows.append(row)
            p = f"p50 {row.get('p50_ms')} p95 {row.get('p95_ms')} p99 {row.get('p99_ms')} ms"
            print(f"{name:<22} {endpoint:<11} c={level:<4} {row['requests_per_s']:>7} req/s  {p}  {row['statuses']}")


def bfloat16_agreement(texts: list[str]) -> dict:
    """How close the served bfloat16 embeddings are to float32's: cosine over the SST-2 dev sentences."""
    from lmtransfer.serve.served import ServedEncoder

    vectors = {}
    for compute in ("float32", "bfloat16"):
        encoder = ServedEncoder.load("minilm", "minilm", compute=compute)
        vectors[compute] = np.stack([v[0] for v in encoder.work(encoder.items(texts, (encoder.last,), "mean", True))])
    cosine = (vectors["float32"] * vectors["bfloat16"]).sum(axis=1)  # both have length 1
    row = {"server": "in process", "endpoint": "embeddings bf16 vs float32", "concurrency": 0, "requests": len(texts)}
    row.update({"cosine_mean": round(float(cosine.mean()), 5), "cosine_min": round(float(cosine.min()), 5)})
    return {**row, "seconds": 0, "requests_per_s": 0, "statuses": {}, "server_errors": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sst2")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.jsonl")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "bench-serve-bbc")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--requests", type=int, default=3000, help="most requests per level")
    parser.add_argument("--seconds", type=float, default=20, help="most seconds per level")
    parser.add_argument("--soak", type=int, default=20000, help="requests of the RSS soak (at concurrency 32)")
    parser.add_argument("--infinity", default="/work/infinity-venv/bin/infinity_emb")
    parser.add_argument(
        "--only",
        nargs="*",
        default=["batching", "soak", "no-batching", "float32", "infinity", "overload"],
        help="parts to run: batching and no-batching (lmtransfer as it starts: --compute auto), soak, float32 "
        "(lmtransfer's embeddings in float32, and bfloat16 against float32), infinity (at its default dtype, and "
        "in bfloat16), overload, onnx (the run exported by `lmtransfer export`, float32 and int8, served)",
    )
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    if not (args.data / "dev.tsv").is_file():
        sys.exit(f"skipped: SST-2 not found at {args.data} (see ../shared/data/README.md)")
    lines = (args.data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = [line.split("\t")[0] for line in lines if line.strip()]
    run = trained_run(args.run)
    from lmtransfer.encoders.loading import resolve_model

    minilm = resolve_model("minilm")
    ours = {
        "predict": [request_bytes("/v1/predict/bbc", {"inputs": [t]}) for t in texts],
        "embeddings": [request_bytes("/v1/embeddings", {"input": t, "model": "minilm"}) for t in texts],
    }
    base = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), **cpu()}
    rows: list[dict] = []

    def ours_server(*extra: str, served: Path = run) -> Server:  # as a user starts it: --compute auto
        port = free_port()
        command = [LMTRANSFER, "serve", f"bbc={served}", "--encoder", "minilm", "--port", str(port), "--no-access-log"]
        return Server([*command, *extra], port, "/health")

    if "batching" in args.only or "soak" in args.only:
        server = ours_server()
        if "batching" in args.only:
            sweep(server, "lmtransfer", ours, args, rows)
        if "soak" in args.only:
            start_rss = server.rss()
            soak = asyncio.run(load(server.port, ours["predict"], 32, args.soak, 3600))
            soak.update({"server": "lmtransfer", "endpoint": "predict (soak)", "rss_start": start_rss})
            soak["rss_end"] = server.rss()
            soak["rss_growth"] = round(soak["rss_end"] / start_rss - 1, 4)
            rows.append(soak)
            mib = f"{start_rss / 2**20:.0f} -> {soak['rss_end'] / 2**20:.0f} MiB"
            print(f"soak: {soak['requests']} requests, RSS {mib}")
        print(f"lmtransfer exited {server.stop()} on SIGTERM")
    if "no-batching" in args.only:
        server = ours_server("--no-batching")
        sweep(server, "lmtransfer no-batching", ours, args, rows)
        server.stop()
    infinity = shutil.which(args.infinity) or (args.infinity if Path(args.infinity).is_file() else None)
    if infinity is None and "infinity" in args.only:
        print(f"skipped infinity: {args.infinity} not found (see this script's docstring)")

    def infinity_sweep(name: str, *extra: str) -> None:
        port = free_port()
        command = [infinity, "v2", "--model-id", minilm, "--served-model-name", "minilm", "--engine", "torch"]
        command += ["--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
        server = Server(command, port, "/health", env)
        payloads = [request_bytes("/embeddings", {"input": [t], "model": "minilm"}) for t in texts]
        sweep(server, name, {"embeddings": payloads}, args, rows)
        server.stop()

    if "float32" in args.only:
        rows.append(bfloat16_agreement(texts))
        agreement = f"cosine {rows[-1]['cosine_mean']} mean, {rows[-1]['cosine_min']} least"
        print(f"bfloat16 embeddings against float32: {agreement}")
        server = ours_server("--compute", "float32")
        sweep(server, "lmtransfer float32", {"embeddings": ours["embeddings"]}, args, rows)
        server.stop()
    if "infinity" in args.only and infinity:
        infinity_sweep("infinity-emb")
        infinity_sweep("infinity-emb bf16", "--dtype", "bfloat16")
    if "onnx" in args.only:  # the same run as an ONNX artefact: its encoder in ONNX Runtime
        for quantize in ("none", "int8"):
            folder = run.with_name(f"{run.name}-onnx{'' if quantize == 'none' else '-int8'}")
            if not folder.is_dir():
                subprocess.run([LMTRANSFER, "export", str(run), "--quantize", quantize, "--quiet"], check=True)
            server = ours_server(served=folder)
            name = "lmtransfer onnx" + ("" if quantize == "none" else "-int8")
            sweep(server, name, {"predict": ours["predict"]}, args, rows)
            server.stop()
    if "overload" in args.only:  # a queue of 8 inputs under 128 connections: most requests are refused
        server = ours_server("--max-queue", "8")
        row = asyncio.run(load(server.port, ours["predict"], 128, 3000, 15))
        row.update({"server": "lmtransfer --max-queue 8", "endpoint": "predict (overload)"})
        rows.append(row)
        print(f"overload: {row['statuses']}, 503 p50 {row.get('refused_p50_ms')} p99 {row.get('refused_p99_ms')} ms")
        server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({**base, **row}) + "\n")
    print(table(args.out))


def table(path: Path) -> str:
    """The latest invocation's rows as a Markdown table, with the ratios the serving issue asks for."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    if not rows:
        return f"no rows in {path}"
    latest = [r for r in rows if r["date"] == rows[-1]["date"]]
    out = [f"{latest[0]['date']}, {latest[0]['cpu']} ({', '.join(latest[0]['isa'])}), {latest[0]['cores']} cores", ""]
    out += ["| server | endpoint | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | statuses |"]
    out += ["|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in latest:
        if "cosine_mean" in r:
            continue
        statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        cells = [r["server"], r["endpoint"], r["concurrency"], r["requests"], r["requests_per_s"]]
        cells += [r.get("p50_ms", ""), r.get("p95_ms", ""), r.get("p99_ms", ""), statuses]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    by = {(r["server"], r["endpoint"], r["concurrency"]): r for r in latest}
    for endpoint in ("predict", "embeddings"):
        ours = by.get(("lmtransfer", endpoint, 32))
        if ours is None:
            continue
        pairs = [(ours, "lmtransfer", "lmtransfer no-batching"), (ours, "lmtransfer", "infinity-emb")]
        pairs.append((ours, "lmtransfer", "infinity-emb bf16"))
        if by.get(("lmtransfer float32", endpoint, 32)):
            pairs.append((by["lmtransfer float32", endpoint, 32], "lmtransfer float32", "infinity-emb"))
        for exported in ("lmtransfer onnx", "lmtransfer onnx-int8"):  # issue 19: an artefact against the run
            if by.get((exported, endpoint, 32)):
                by_run = by[exported, endpoint, 32]["requests_per_s"] / ours["requests_per_s"]
                out.append(f"{endpoint} at concurrency 32: {exported} {by_run:.2f}x lmtransfer (the torch run)")
        for mine, name, other in pairs:
            theirs = by.get((other, endpoint, 32))
            if theirs:
                ratio = mine["requests_per_s"] / theirs["requests_per_s"]
                out.append(f"{endpoint} at concurrency 32: {name} {ratio:.2f}x {other}")
        if "p50_ms" in ours:
            out.append(f"{endpoint} at concurrency 32: p99 / p50 = {ours['p99_ms'] / ours['p50_ms']:.2f}")
    for r in latest:
        if "cosine_mean" in r:
            out.append(f"bfloat16 embeddings: cosine to float32 {r['cosine_mean']} on average, {r['cosine_min']} least")
        if "rss_start" in r:
            out.append(f"soak of {r['requests']:,} requests: RSS growth {100 * r['rss_growth']:.1f}%")
        if "refused_p99_ms" in r:
            out.append(f"overload: 503 answered in p50 {r['refused_p50_ms']} ms, p99 {r['refused_p99_ms']} ms")
    return "\n".join(out)


if __name__ == "__main__":
    main()
