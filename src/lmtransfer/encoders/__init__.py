"""Encoders: pretrained transformers (local first, safetensors only), static word vectors (GloVe, word2vec,
fastText, trained from scratch), bag-of-words baselines, masked language models, and word2vec training."""
