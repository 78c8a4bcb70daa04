"""Features from an encoder: what it reads (``inputs``), pooling per text, word or token (``pooling``),
extraction into the feature cache (``extraction``) and the cache itself (``cache``)."""
