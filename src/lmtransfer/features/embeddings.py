"""One unit vector per text from a frozen encoder: its last layer mean-pooled over the real tokens, as
sentence-transformers' MiniLM and MPNet were trained to be compared by cosine. Zero-shot classification
(label descriptions against texts) and the nearest demonstrations of a prompt read them; a pair of texts is
read together, as the encoder's tokenizer joins two texts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from lmtransfer.data.examples import Example
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.features.inputs import encode
from lmtransfer.features.pooling import encoder_inputs, hidden_states, pool_sentence


@torch.inference_mode()
def sentence_embeddings(
    encoder: Encoder,
    items: Sequence[Example],
    max_length: int,
    *,
    batch_size: int = 64,
    advance: Callable[[int], object] | None = None,
) -> np.ndarray:
    """(N, H) float32 unit vectors of ``items`` (texts, or pairs), in batches of similar length."""
    model = encoder.freeze().model
    device = next(model.parameters()).device
    encoding = encode(encoder.tokenizer, list(items), max_length)
    order = np.argsort(encoding.lengths, kind="stable")  # similar lengths share a batch
    out = np.zeros((len(items), encoder.hidden_size), dtype=np.float32)
    for first in range(0, len(order), batch_size):
        chosen = order[first : first + batch_size]
        batch = {k: v.to(device) for k, v in encoding.pad(chosen, encoder.tokenizer.pad_token_id or 0).items()}
        last = hidden_states(model, encoder_inputs(batch, encoder.uses_token_type_ids))[-1]  # (B, T, H)
        pooled = pool_sentence(last[:, None], batch["attention_mask"], "mean")[:, 0]  # (B, H)
        out[chosen] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        if advance is not None:
            advance(len(chosen))
    return out
