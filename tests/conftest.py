"""Settings shared by every test folder; fixtures live in each folder's conftest."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# No per-example deadline: CI machines are slower and noisier than laptops.
settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
