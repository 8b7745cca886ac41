"""Pricing mechanisms, one module each behind the Mechanism protocol (issue #3)."""
