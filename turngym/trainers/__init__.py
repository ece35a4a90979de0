"""The trainer: credit assignment (``advantages``), losses, batching, config and the training loop.

Stages, in order (see ``loop.py``): collect rollouts → compute group advantages → build the token
batch → loss and optimizer step → sync weights → evaluate, log, checkpoint.
"""
