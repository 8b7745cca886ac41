"""The verifier agent: re-runs work and opens disputes."""

#: the verifier's key name in ``$PASAR_HOME/keys`` (light, for the CLI's defaults)
VERIFIER_KEY = "verifier"
