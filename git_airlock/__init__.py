"""git-airlock: run coding agents in disposable sandboxes, review what they commit."""

__version__ = "0.1.0"
