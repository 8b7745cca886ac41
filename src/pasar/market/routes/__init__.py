"""HTTP routes of the market node, one module per resource."""
