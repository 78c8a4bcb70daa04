"""``lmtransfer serve``: trained runs and encoders behind an HTTP API (``lmtransfer.serve``)."""

from __future__ import annotations

import signal

import click

from lmtransfer.cli.options import chosen_run
from lmtransfer.core import choices as c
from lmtransfer.core.errors import LmtError
from lmtransfer.serve.settings import ENCODER_MAX_LENGTH, Settings

API_KEY_ENV = "LMTRANSFER_API_KEY"


def limit_option(field: str, kind: click.ParamType, help: str):
    """The option for the ``Settings`` field ``field`` (``--max-queue`` for ``max_queue``), with its default;
    the command passes the value on as that field."""
    flag = "--" + field.replace("_", "-")
    return click.option(flag, default=getattr(Settings, field), show_default=True, type=kind, help=help)


@click.command("serve")
@click.argument("runs", nargs=-1, metavar="[RUN ...]")
@click.option(
    "--encoder",
    "encoders",
    multiple=True,
    metavar="MODEL",
    help="also serve an encoder for /v1/embeddings and /v1/features: an alias (minilm, mpnet), a folder or a "
    "hub id, optionally NAME=MODEL (repeatable)",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind; 0.0.0.0 for every interface")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--api-key",
    default=None,
    envvar=API_KEY_ENV,
    help=f"require 'Authorization: Bearer KEY' on /v1 (env {API_KEY_ENV}; /health stays open)",
)
@limit_option("max_batch_tokens", click.IntRange(min=1), "token budget of one batch of requests")
@limit_option("max_wait_ms", click.FloatRange(min=0), "how long the oldest request waits for others to share its batch")
@limit_option(
    "max_queue", click.IntRange(min=1), "inputs that may wait; beyond, requests get 503 with Retry-After at once"
)
@limit_option("max_inputs", click.IntRange(min=1), "inputs per request")
@limit_option("max_body_bytes", click.IntRange(min=1), "request size")
@click.option("--no-batching", is_flag=True, help="one forward pass per request (for comparison)")
@click.option(
    "--max-length", default=ENCODER_MAX_LENGTH, show_default=True, type=click.IntRange(min=2), help="encoders' tokens"
)
@click.option(
    "--compute",
    type=click.Choice(c.COMPUTE_DTYPES),
    default="auto",
    show_default=True,
    help="encoders' arithmetic: auto is bfloat16 where the CPU has bfloat16 units (AVX512-BF16, AMX), about 2x "
    "faster there, and float32 elsewhere (where bfloat16 is emulated and slower); float32 gives "
    "sentence-transformers' vectors exactly. Runs compute as they were trained to.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="a log line per request")
@click.option(
    "--quiet", "-q", is_flag=True, help="no loading lines, no access log, and only the server's warnings and errors"
)
def serve_command(
    runs, encoders, host, port, api_key, no_batching, max_length, compute, access_log, quiet, **limits
) -> None:
    """Serve trained RUN folders (NAME=FOLDER to name one; default: the folder's name) and --encoder models
    over HTTP, each loaded once.

    \b
      POST /v1/predict/NAME   {"inputs": [...]}: texts; pairs as {"text", "text_pair"}; words or texts to tag;
                              {"question", "context"}; answers as `lmtransfer predict` prints them
      POST /v1/embeddings     OpenAI's embeddings request (mean of the last layer, length 1)
      POST /v1/features       {"input": [...], "layers": "all" | "last" | [0, 6], "pooling": "mean"}
      GET  /v1/models, GET /health, GET /docs (the OpenAPI page)

    Concurrent requests share batches (--max-batch-tokens, --max-wait-ms). SIGTERM (or Ctrl-C) finishes the
    requests in flight, then exits 0. Example:

    \b
      lmtransfer serve runs/bbc --encoder minilm
      curl -s localhost:8000/v1/predict/bbc -d '{"inputs": ["Shares rose sharply."]}'
    """
    if not runs and not encoders:
        raise click.UsageError("give at least one RUN folder or --encoder MODEL")
    import uvicorn

    from lmtransfer.serve.app import build_app

    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        click.echo(f"warning: serving on {host} without --api-key: anyone who can reach it can use it", err=True)
    settings = Settings(**limits, api_key=api_key or None, batching=not no_batching)
    app = build_app(*_load(runs, encoders, max_length, compute, quiet), settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=access_log and not quiet,
        timeout_graceful_shutdown=30,
        log_level="warning" if quiet else "info",
    )
    # uvicorn handles SIGTERM itself (it stops taking connections and finishes those in flight), then
    # raises the signal again under the handler that was there before it: a no-op here, so the exit is 0
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # uvicorn has said why (the port is taken, say)
        raise LmtError(f"the server did not start on {host}:{port}")


def _load(
    runs: tuple[str, ...], encoders: tuple[str, ...], max_length: int, compute: str, quiet: bool = False
) -> tuple[list, list]:
    """The runs and encoders the command names, each loaded once, as the app serves them."""
    from lmtransfer.serve.served import ServedEncoder, ServedRun, parse_named, unique_names

    named_runs = [parse_named(spec) for spec in runs]
    named_encoders = [parse_named(spec) for spec in encoders]
    unique_names(named_runs + named_encoders)
    served_runs = []
    for name, folder in named_runs:
        folder = chosen_run(folder)  # a comparison folder serves the run its verdict chose
        if not quiet:
            click.echo(f"loading run {name} from {folder}", err=True)
        served_runs.append(ServedRun.load(name, folder))
    if compute == "auto":
        from lmtransfer.core.devices import auto_compute

        compute = auto_compute("cpu")
    served_encoders = []
    for name, model in named_encoders:
        if not quiet:
            click.echo(f"loading encoder {name} ({model}, {compute})", err=True)
        served_encoders.append(ServedEncoder.load(name, model, max_length, compute))
    return served_runs, served_encoders
