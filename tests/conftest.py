"""Settings for the whole suite.

Hypothesis times how long it takes to *generate* examples and fails a test whose generation is
slow; on a 2-core machine shared with real market and provider processes that says nothing about
the code under test, so that health check and the per-example deadline are off everywhere.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("pasar", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("pasar")
