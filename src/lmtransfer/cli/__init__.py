"""The command line (``lmtransfer``): the group in ``main``, a module per group of commands."""
