"""Pure domain code: money, resources, job specs, ledger, pricing.

No I/O, no wall clock, no global randomness: everything impure is passed in.
"""
