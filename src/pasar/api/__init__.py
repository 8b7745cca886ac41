"""The typed wire contract shared by the market, the client, the provider and the CLI."""
