"""Runs: the run directory and its atomic save, typed training results and costs, the one interface of a
loaded run, and the two kinds of run (an encoder with a task model; the bag-of-words baseline)."""
