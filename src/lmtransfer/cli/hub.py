"""``lmtransfer push``: a run folder to the Hugging Face Hub."""

from __future__ import annotations

import click

from lmtransfer.cli.options import chosen_run, quiet_libraries, renamed


@click.command("push")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False), callback=lambda c, p, v: chosen_run(v))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="create the repo as private")
@click.option("--with-checkpoints", is_flag=True, help="also upload checkpoints/ (optimizer states, pickled)")
@click.option("--revision", default=None, help="branch to upload to (default: main)")
@click.option("--message", default=None, help="commit message")
@renamed("-m", "--message", "message")
@click.option("--dry-run", is_flag=True, help="list what would be uploaded and stop")
@click.option("--quiet", "-q", is_flag=True, help="no upload progress bars")
def push_command(run_dir, repo_id, private, with_checkpoints, revision, message, dry_run, quiet) -> None:
    """Upload RUN_DIR to the Hub model repo REPO_ID (created if needed): its model card (README.md), config,
    weights (safetensors), labels, metrics, predictions and TensorBoard logs; checkpoints only when asked.

    Logs in with the token of `hf auth login` or HF_TOKEN. The same folder also uploads with
    `hf upload REPO_ID RUN_DIR --exclude "checkpoints/*"`.
    """
    if quiet:
        quiet_libraries()
    from lmtransfer.runs.hub import push, upload_plan

    folder, files = upload_plan(run_dir, with_checkpoints)
    if dry_run:
        for name in files:
            path = folder / name
            size = f"{path.stat().st_size:>12,}" if path.is_file() else "  to write"  # a model card, for an old run
            click.echo(f"{size}  {name}")
        click.echo(f"{len(files)} files to {repo_id}")
        return
    url = push(run_dir, repo_id, private=private, checkpoints=with_checkpoints, revision=revision, message=message)
    click.echo(f"uploaded {len(files)} files: {url}")
