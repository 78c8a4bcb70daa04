"""Options and helpers that several commands share: the config argument with its shortcuts and overrides."""

from __future__ import annotations

import functools
import json

import click

SET_HELP = "override a config field, e.g. --set head.type=mlp --set train.lr=3e-4 (repeatable)"


def load_run_config(config_path: str | None, overrides: tuple[str, ...], **shortcuts: str | None):
    """The config at ``config_path`` (None: the defaults) with ``--set`` overrides and option shortcuts
    (``encoder.model=...`` for --model, say); shortcuts go first, so that a --set of the same field wins."""
    from lmtransfer.config.loading import load_config  # pydantic and YAML: not needed for --help

    extra = [f"{key}={value}" for key, value in shortcuts.items() if value is not None]
    return load_config(config_path, [*extra, *overrides])


def echo_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2))


def run_config_options(func):
    """Options shared by the commands that read a run config."""
    options = [
        click.argument("config_path", required=False, metavar="[CONFIG]"),
        click.option("--set", "-s", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP),
        click.option(
            "--model",
            "-m",
            default=None,
            help="encoder: local dir, hub id, alias (minilm, mpnet, glove-6b-50d, smollm2), a causal LM's .gguf file, "
            "a vectors file, or a baseline: counts, tfidf, scratch",
        ),
        click.option("--layers", default=None, help="'all', 'last4', an index or a list such as '[-1,-2]'"),
        click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="feature cache root"),
        click.option("--quiet", "-q", is_flag=True, help="no progress bars"),
        click.option(
            "--allow-pickle",
            is_flag=True,
            help="also load a model that has only pickle weights (pytorch_model.bin), with "
            "torch.load(weights_only=True); sets encoder.allow_pickle",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def renamed(old: str, new: str, param: str, **attrs):
    """Option ``old``, the spelling of ``new`` before this release: hidden from the help, still taken for one
    release (its value goes to ``param`` unless ``new`` is given too), with a line on stderr that says so."""
    hidden = f"renamed_{param}"

    def decorate(func):
        @functools.wraps(func)
        def command(*args, **kwargs):
            value = kwargs.pop(hidden)
            if value not in (None, False, ()):
                click.echo(f"{old} is now {new}; the old spelling goes in the next release", err=True)
                if kwargs.get(param) in (None, False, ()):
                    kwargs[param] = value
            return func(*args, **kwargs)

        return click.option(old, hidden, hidden=True, **attrs)(command)

    return decorate


def required(value, option: str):
    """``value`` of an option that is required but may also come from its old spelling."""
    if value in (None, ()):
        raise click.UsageError(f"Missing option '{option}'.")
    return value


def quiet_libraries() -> None:
    """What ``-q`` means where lmtransfer itself shows no progress: the libraries' progress bars and warnings
    (transformers, huggingface_hub) are not shown either."""
    import os

    from lmtransfer.core.progress import hide_library_bars

    hide_library_bars()
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"


def chosen_run(folder: str) -> str:
    """``folder`` (a run), or the run a comparison folder's verdict chose, saying which on stderr."""
    from lmtransfer.runs.winner import winner_of

    found = winner_of(folder)
    if found is None:
        return folder
    click.echo(f"using {found[1]}", err=True)
    return str(found[0])
