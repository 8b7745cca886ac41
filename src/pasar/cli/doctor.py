"""`pasar doctor` (being written)."""


def doctor() -> None:
    """Check this machine."""
