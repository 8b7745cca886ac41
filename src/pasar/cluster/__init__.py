"""Multi-node leases as Ray clusters (the cluster extra)."""
