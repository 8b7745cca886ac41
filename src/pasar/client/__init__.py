"""The Python SDK: Client, AsyncClient and @remote (issue #6)."""
