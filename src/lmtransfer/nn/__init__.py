"""Neural modules, one idea each: the scalar mix, the CRF, the heads and their factory, the task model."""
