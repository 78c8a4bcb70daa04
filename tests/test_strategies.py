"""feature / finetune / lora on the tiny BERT: what trains, what stays, resume, export, two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from lmtransfer import load_config, train
from lmtransfer.api import evaluate, predict
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.training.checkpoint import Checkpoints

ROOT = Path(__file__).resolve().parent.parent


def encoder_weights(path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_encoder(str(path)).model.state_dict().items() if "position_ids" not in k}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def trained_encoder(result) -> dict[str, torch.Tensor]:
    encoder = result.model.features.encoder
    encoder = encoder.merge_and_unload() if hasattr(encoder, "merge_and_unload") else encoder
    return {k: v for k, v in encoder.state_dict().items() if "position_ids" not in k}


def test_finetune_changes_every_encoder_parameter(run_overrides, tiny_bert_dir):
    before = encoder_weights(tiny_bert_dir)
    result = train(
        load_config(None, [*run_overrides, "strategy=finetune", "train.epochs=1", "train.lr=1e-3"]), progress=False
    )
    after = trained_encoder(result)
    assert changed(before, after) == set(before)


def test_feature_changes_no_encoder_parameter(run_overrides, tiny_bert_dir):
    before = encoder_weights(tiny_bert_dir)
    train(load_config(None, run_overrides), progress=False)
    assert not changed(before, encoder_weights(tiny_bert_dir))


def test_freezing_bottom_layers_and_embeddings(run_overrides, tiny_bert_dir):
    before = encoder_weights(tiny_bert_dir)
    config = load_config(
        None,
        [
            *run_overrides,
            "strategy=finetune",
            "train.epochs=1",
            "train.lr=1e-3",
            "finetune.freeze_layers=1",
            "finetune.freeze_embeddings=true",
        ],
    )
    after = trained_encoder(train(config, progress=False))
    frozen = {k for k in before if k.startswith(("embeddings.", "encoder.layer.0."))}
    assert changed(before, after) == set(before) - frozen


def test_lora_changes_only_adapters_and_head(run_overrides, tiny_bert_dir):
    config = load_config(None, [*run_overrides, "strategy=lora", "train.epochs=1", "lora.r=4"])
    result = train(config, progress=False)
    model = result.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("model.") for n in trainable)
    base = encoder_weights(tiny_bert_dir)
    peft_model = model.features.encoder
    state = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in peft_model.state_dict().items()
        if "lora_" not in k
    }
    assert not changed(base, {k: state[k] for k in base})  # base weights untouched
    adapters = {k: v for k, v in peft_model.state_dict().items() if "lora_B" in k}
    assert adapters and all(v.abs().sum() > 0 for v in adapters.values())  # B starts at zero: it moved
    assert (result.directory / "adapter" / "adapter_config.json").is_file()


@pytest.mark.parametrize("strategy", ["finetune", "feature"])
def test_resume_after_a_crash_ends_like_an_uninterrupted_run(run_overrides, tmp_path, monkeypatch, strategy):
    common = [
        *run_overrides,
        f"strategy={strategy}",
        "train.epochs=1",
        "train.min_steps=15",  # 6 steps an epoch: 3 epochs, 18 steps
        "train.checkpoint_every=2",
        "train.patience=5",
        "train.lr=1e-3",
    ]
    whole = train(load_config(None, [*common, f"output_dir={tmp_path / 'whole'}"]), progress=False).metrics

    saves = {"count": 0}
    original = Checkpoints.save

    def crash_after_third_save(self, *args, **kwargs):
        path = original(self, *args, **kwargs)
        saves["count"] += 1
        if saves["count"] == 3:  # mid-epoch 2: steps 2 and 4 of 6 per epoch... then the crash
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(Checkpoints, "save", crash_after_third_save)
    killed = load_config(None, [*common, f"output_dir={tmp_path / 'killed'}"])
    with pytest.raises(KeyboardInterrupt):
        train(killed, progress=False)
    assert not (tmp_path / "killed" / "metrics.json").exists()
    monkeypatch.setattr(Checkpoints, "save", original)
    resumed = train(killed, progress=False, resume=True).metrics
    assert [h.get("train_loss", 0) for h in resumed["history"]] == pytest.approx(
        [h.get("train_loss", 0) for h in whole["history"]], rel=1e-5
    )
    assert resumed["dev"] == whole["dev"] and resumed["test"] == whole["test"]
    # the budget in steps survives the crash: the same steps, evaluated at the same points
    assert resumed["costs"]["optimizer_steps"] == whole["costs"]["optimizer_steps"] == 18
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in whole["history"]] == [0, 10, 18]
    assert resumed["convergence"] == whole["convergence"]


def test_finetuned_run_exports_a_hugging_face_encoder(run_overrides, tmp_path, sentiment_files):
    config = load_config(None, [*run_overrides, "strategy=finetune", "train.epochs=2", "train.lr=1e-3"])
    result = train(config, progress=False)
    encoder_dir = result.directory / "encoder"
    assert (encoder_dir / "model.safetensors").is_file()
    AutoModel.from_pretrained(encoder_dir)  # plain transformers loads it
    again = evaluate(result.directory, progress=False)
    assert again["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    labels = [p["label"] for p in predict(result.directory, ["the movie was great", "shares fell"])]
    assert set(labels) <= {"pos", "neg", "biz"}
    # the fine-tuned encoder as the frozen encoder of a later feature-based run
    later = train(
        load_config(None, [*run_overrides, f"encoder.model={encoder_dir}", f"output_dir={tmp_path / 'later'}"]),
        progress=False,
    )
    info = json.loads((later.directory / "encoder.json").read_text())
    assert info["weights_sha256"] == json.loads((result.directory / "encoder.json").read_text())["weights_sha256"]


def test_costs_are_recorded(run_overrides):
    costs = train(load_config(None, [*run_overrides, "strategy=finetune", "train.epochs=1"]), progress=False)
    c = costs.metrics["costs"]
    assert c["trainable_parameters"] > 10_000 and c["train_seconds"] > 0 and c["peak_rss_bytes"] > 0
    assert c["train_tokens"] > 0 and c["train_tokens_per_second"] > 0 and c["optimizer_steps"] == 6


def test_two_processes_train_one_model(run_overrides, tmp_path):
    out = tmp_path / "ranks"
    out.mkdir()
    overrides = [
        *run_overrides,
        "strategy=finetune",
        "train.epochs=1",
        "train.lr=1e-3",
        f"output_dir={tmp_path / 'ddp'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # on a machine without GPUs, --multi_gpu starts plain processes that lmtransfer runs on the CPU (gloo)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29533",
        str(ROOT / "tests" / "ddp_worker.py"),
        str(out),
        *overrides,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank-{i}.json").read_text()) for i in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # one model, kept in step by DDP
    assert [r["dev_examples"] for r in ranks] == [6, 6]  # dev metrics gathered over both halves
    assert ranks[0]["train_examples"] == 48
    assert (tmp_path / "ddp" / "encoder" / "model.safetensors").is_file()


def test_bf16_autocast_and_gradient_accumulation(run_overrides):
    overrides = [
        *run_overrides,
        "strategy=finetune",
        "train.epochs=1",
        "train.mixed_precision=bf16",
        "train.grad_accum=2",
        "train.batch_size=8",
    ]
    result = train(load_config(None, overrides), progress=False)
    costs = result.metrics["costs"]
    assert costs["mixed_precision"] == "bf16"
    assert costs["optimizer_steps"] == 6  # 48 examples, micro-batches of 4, two per step
    again = train(load_config(None, [*run_overrides, "train.epochs=1"]), progress=False)  # other settings, same process
    assert again.metrics["costs"]["mixed_precision"] == "no"


HOLD_AFTER_STEP_8 = """
import sys, time
from lmtransfer.cli.main import main
from lmtransfer.training.checkpoint import Checkpoints

save = Checkpoints.save

def save_then_hold(self, step, *args, **kwargs):
    path = save(self, step, *args, **kwargs)
    if step == 8:
        print("held", path.name, flush=True)
        time.sleep(600)
    return path

Checkpoints.save = save_then_hold
sys.argv[0] = "lmtransfer"
main()
"""


def test_sigkilled_cli_run_resumes_to_the_same_metrics(run_overrides, tmp_path):
    common = [
        *run_overrides,
        "strategy=finetune",
        "train.epochs=6",
        "train.patience=10",
        "train.lr=1e-3",
        "train.checkpoint_every=1",
        "train.keep_checkpoints=2",
    ]
    sets = lambda items: [a for item in items for a in ("--set", item)]  # noqa: E731
    cli = [sys.executable, "-m", "lmtransfer", "train", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole = tmp_path / "whole"
    subprocess.run([*cli, *sets([*common, f"output_dir={whole}"])], env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    # the same command, held just after it saved step 8's checkpoint, whatever the CPU's speed: it says so on
    # stdout and waits there to be killed
    held = [sys.executable, "-c", HOLD_AFTER_STEP_8, "train", "-q"]
    proc = subprocess.Popen(
        [*held, *sets([*common, f"output_dir={killed}"])], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert proc.stdout.readline().split() == [b"held", b"step-0000008"]
    finally:
        proc.kill()
        proc.wait()
    assert not (killed / "metrics.json").exists()
    subprocess.run(
        [*cli, "--resume", *sets([*common, f"output_dir={killed}"])], env=env, check=True, capture_output=True
    )
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (whole, killed))
    assert second["dev"] == first["dev"] and second["test"] == first["test"]
    assert [h.get("train_loss", 0) for h in second["history"]] == pytest.approx(
        [h.get("train_loss", 0) for h in first["history"]], rel=1e-5
    )
    kept = sorted(p.name for p in (whole / "checkpoints").iterdir())
    assert kept == ["best", "step-0000035", "step-0000036"]  # keep_checkpoints=2 periodic ones, and the best


def test_length_grouped_batches_pad_less_and_cover_every_example_once():
    from lmtransfer.training.sampler import EpochSampler

    lengths = np.random.default_rng(0).integers(3, 60, size=1003)
    grouped = EpochSampler(len(lengths), seed=5, lengths=lengths, group=8)
    plain = EpochSampler(len(lengths), seed=5)

    def padded(order):
        return sum(lengths[order[i : i + 8]].max() * len(order[i : i + 8]) for i in range(0, len(order), 8))

    grouped.start(epoch=2)
    order = grouped.order()
    assert sorted(order.tolist()) == list(range(len(lengths)))
    assert padded(order) < 0.75 * padded(plain.order())
    assert padded(order) < 1.1 * lengths.sum()  # nearly no padding left
    full = len(lengths) // 8 * 8  # the longest example among whole batches is in the first batch
    assert lengths[order[:8]].max() == lengths[order[:full]].max()
    grouped.start(epoch=3)
    assert not np.array_equal(grouped.order(), order)  # a new order each epoch
    grouped.start(epoch=2, skip=24)
    assert list(grouped) == order[24:].tolist()  # a resumed epoch continues the same order
