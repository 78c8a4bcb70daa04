"""The one training loop and what it needs: budgets and convergence, the optimizer, datasets and sampling,
checkpoints, prediction in input order, the three strategies, and masked-LM pretraining on the same loop."""
