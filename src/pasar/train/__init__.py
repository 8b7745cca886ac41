"""Proof-of-learning training harness (PyTorch, the ml extra)."""
