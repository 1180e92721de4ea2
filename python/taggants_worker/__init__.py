"""The taggants PyTorch worker: tensor-level commands served over ZeroMQ to the orchestrator."""

__version__ = "0.1.0"
