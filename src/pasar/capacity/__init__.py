"""Capacity proofs outside core: the challenge's numpy/torch arithmetic (:mod:`.proof`)."""
