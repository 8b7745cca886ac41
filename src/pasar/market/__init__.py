"""The market node: HTTP API, SQL store, matching engine, chain (issue #4)."""
