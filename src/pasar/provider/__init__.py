"""The provider agent: hardware, benchmark, bidding strategy, sandboxed runtimes (issue #5)."""

#: the provider's key name in ``$PASAR_HOME/keys`` (here, not in the agent's module, so the CLI
#: can name it as a default without loading the agent)
PROVIDER_KEY = "provider"
