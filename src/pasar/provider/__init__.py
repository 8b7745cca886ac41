"""The provider agent: hardware, benchmark, bidding strategy, sandboxed runtimes (issue #5)."""
