"""An encoder as lmtransfer holds it: the model, its tokenizer, and the facts a feature cache's key needs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lmtransfer.encoders.decoders import is_causal


@dataclass
class Encoder:
    """A frozen-ready encoder with its tokenizer and the facts a cache key needs."""

    name: str
    source: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    _weights_hash: str | None = field(default=None, repr=False)
    pooler: torch.nn.Module | None = field(default=None, repr=False)  # the checkpoint's, set aside (see _load)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def causal(self) -> bool:
        """A decoder-only LM's: each token has seen only those before it (``encoders.decoders.is_causal``)."""
        return is_causal(self.model.config)

    @property
    def uses_token_type_ids(self) -> bool:
        return "token_type_ids" in self.tokenizer.model_input_names

    def weights_hash(self) -> str:
        """sha256 over the parameter and buffer tensors as loaded (so fine-tuned weights differ)."""
        if self._weights_hash is None:
            digest = hashlib.sha256()
            for key, tensor in sorted(self.model.state_dict().items()):
                digest.update(key.encode())
                digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy())  # no copy
            self._weights_hash = digest.hexdigest()
        return self._weights_hash

    def tokenizer_hash(self) -> str:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # drop the truncation/padding state that each call sets
            state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
            text = json.dumps(state, sort_keys=True)
        else:
            text = repr(sorted(self.tokenizer.get_vocab().items()))
        digest = hashlib.sha256(type(self.tokenizer).__name__.encode())
        digest.update(text.encode())
        return digest.hexdigest()

    def freeze(self) -> Encoder:
        """Frozen: no gradients, and eval mode pinned (dropout off). Extraction adds inference_mode."""
        self.model.requires_grad_(False)
        self.model.eval()
        return self
