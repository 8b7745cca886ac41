"""Multi-node jobs (issue 15): a gang's private network on one machine (:mod:`.network`) and a
Ray cluster across its nodes (:mod:`.ray_nodes`, :mod:`.ray_ready`; Ray is the cluster extra).
The market's side — gangs matched together, ended with their head — is in ``core``."""
