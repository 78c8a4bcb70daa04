"""``lmtransfer cache``: list, verify and remove feature caches (torch is never imported)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from lmtransfer.cli.options import echo_json
from lmtransfer.core.caches import cache_root
from lmtransfer.core.errors import LmtError
from lmtransfer.core.text import human_bytes
from lmtransfer.features.cache.admin import list_caches, remove_cache, verify_cache
from lmtransfer.features.cache.layout import DIGEST_LENGTH


@click.group()
def cache() -> None:
    """List, verify and remove feature caches."""


@cache.command("ls")
@click.option("--cache-dir", default=None, help="default $LMTRANSFER_CACHE or ~/.cache/lmtransfer")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def cache_ls(cache_dir, as_json) -> None:
    """One line per cache: digest, model, layers, granularity, examples, size, state."""
    rows = list_caches(cache_root(cache_dir))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no feature caches under {cache_root(cache_dir)}")
    for r in rows:
        state = "complete" if r["complete"] else f"partial {r['shards']}"
        click.echo(
            f"{r['digest']}  {Path(r['model']).name:<28} layers={r['layers']} {r['granularity']}/"
            f"{r['pooling']} {r['dtype']}  {r['examples']:>8,} ex  {human_bytes(r['bytes']):>9}  {state}"
        )


def _selected(cache_dir: str | None, digests: tuple[str, ...], everything: bool) -> list[Path]:
    for digest in digests:  # never a path: '..', '/' or an empty prefix must not reach the file system
        if not re.fullmatch(f"[0-9a-f]{{1,{DIGEST_LENGTH}}}", digest):
            raise LmtError(
                f"'{digest}' is not a cache digest: 1 to {DIGEST_LENGTH} hex digits, as 'cache ls' shows",
                field="digest",
            )
    rows = list_caches(cache_root(cache_dir))
    if everything or not digests:
        return [Path(r["path"]) for r in rows]
    chosen = []
    for digest in digests:
        hits = [Path(r["path"]) for r in rows if r["digest"].startswith(digest)]
        if len(hits) != 1:
            raise LmtError(f"{'no' if not hits else 'more than one'} cache matches '{digest}'", field="digest")
        chosen += hits
    return chosen


@cache.command("verify")
@click.argument("digests", nargs=-1)
@click.option("--cache-dir", default=None)
@click.option("--no-repair", is_flag=True, help="only report; by default bad shards are dropped from the manifest")
def cache_verify(digests, cache_dir, no_repair) -> None:
    """Check sizes and sha256 checksums of every shard (all caches, or those whose digest starts with DIGESTS).

    Bad shards are dropped from the cache's manifest, so that the next extraction redoes only those.
    Exits 1 when anything was wrong.
    """
    bad = 0
    for directory in _selected(cache_dir, digests, False):
        problems = verify_cache(directory, repair=not no_repair)
        bad += bool(problems)
        click.echo(f"{directory.name}: {'ok' if not problems else 'BAD'}")
        for problem in problems:
            click.echo(f"  {problem}")
    sys.exit(1 if bad else 0)


@cache.command("rm")
@click.argument("digests", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="remove every cache")
@click.option("--cache-dir", default=None)
def cache_rm(digests, everything, cache_dir) -> None:
    """Remove caches by digest prefix (or --all)."""
    if not digests and not everything:
        raise click.UsageError("name DIGESTS or give --all")
    for directory in _selected(cache_dir, digests, everything):
        remove_cache(directory)
        click.echo(f"removed {directory}")
