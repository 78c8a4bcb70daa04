"""Tasks: what each task reads, what its encoder sees, how its outputs are scored (``table`` lists them);
their metrics, QA windows and answers, and fill-mask inference."""
