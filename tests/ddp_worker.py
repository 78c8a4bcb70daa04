"""Run under `accelerate launch --cpu --num_processes 2 tests/ddp_worker.py OUT_DIR OVERRIDES...`.

Each process trains through the public API and writes what it ended with to OUT_DIR/rank-N.json.
"""

import hashlib
import json
import sys
from pathlib import Path

from accelerate import PartialState

from lmtransfer import load_config, train

out = Path(sys.argv[1])
result = train(load_config(None, sys.argv[2:]), progress=False)
digest = hashlib.sha256()
for key, tensor in sorted(result.model.state_dict().items()):
    digest.update(key.encode() + tensor.detach().contiguous().numpy().tobytes())
state = PartialState()
report = {
    "rank": state.process_index,
    "world": state.num_processes,
    "weights": digest.hexdigest(),
    "dev_examples": result.metrics["dev"]["examples"],
    "train_examples": result.metrics["costs"]["train_examples"],
}
(out / f"rank-{state.process_index}.json").write_text(json.dumps(report))
