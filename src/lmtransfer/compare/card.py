"""The model card (``README.md``, Hub format) of a comparison folder: its verdict and table, what the folder
holds and how to rebuild the report. Each row's run folder (under ``runs/``) has its own card."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCardData

from lmtransfer.compare.results import Summary


def comparison_card(directory: Path, table: str, verdict: str, summaries: list[Summary]) -> str:
    encoders = sorted({s.encoder for s in summaries})
    data = ModelCardData(library_name="lmtransfer", tags=["lmtransfer", "comparison"], model_name=directory.name)
    rows = sum(len(s.seeds) + len(s.failed) for s in summaries)
    body = (
        f"# {directory.name}\n\nAn lmtransfer comparison of "
        f"{len(summaries)} variants on {', '.join(f'`{e}`' for e in encoders) or 'no encoder'} ({rows} runs).\n\n"
        f"**Verdict.** {verdict}\n\n## Results\n\n{table}\n"
        "## What is here\n\n- `results.jsonl`: one row per variant, encoder, seed (and training-set size), with "
        "its metrics, their 95% intervals and its costs; a search's trials are rows too\n"
        "- `report.md`, `report.html`: the verdict and the table; the HTML page has the plots\n"
        "- `runs/VARIANT/ENCODER/[n-SIZE/]seed-N/` (`trial-N/` for a search's trials): each row's run folder, "
        "with its own model card and its evaluation units (`predictions/*.units.npz`)\n\n"
        f"Rebuild the report from the rows: `lmtransfer compare report {directory.name}`.\n"
    )
    return f"---\n{data.to_yaml()}\n---\n\n{body}"
