"""``lmtransfer compare``: the runner (each row in a child process, one shared extraction, resumable), the
worker that runs a row, the results read back and summarised, the verdict, and the report with its plots."""
