"""Labelled data as read from files: one split container, the example types an encoder reads, tables
(CSV, TSV, JSONL, Hugging Face datasets, the BBC demo), CoNLL files and tag schemes, SQuAD JSON."""
