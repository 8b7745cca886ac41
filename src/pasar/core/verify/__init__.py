"""Verification math: receipts, time-lock, capacity, replication, proof-of-learning, bisection."""
