"""The economics simulator: core/ on a virtual clock."""
