"""The verifier agent: re-runs work and opens disputes."""
