"""Identities (Ed25519), canonical JSON, signed envelopes and Merkle trees."""
