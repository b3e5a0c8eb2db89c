"""Hypothesis profiles of the suite: ``fast`` in the default run, ``thorough`` (10x the examples, random
seeds) under ``-m slow``.

A property test takes the ``profile`` parameter (:data:`PROFILES`) and runs its ``@given`` check through
:func:`run`, so each property is in both suites with one definition.
"""
from typing import Callable

import pytest
from hypothesis import HealthCheck, settings

COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# derandomized: the default suite gives the same verdict on every run and machine
settings.register_profile("spacy-elmo-fast", derandomize=True, database=None, **COMMON)
settings.register_profile("spacy-elmo-thorough", **COMMON)
SCALE = {"fast": 1, "thorough": 10}

PROFILES = pytest.mark.parametrize("profile", ["fast", pytest.param("thorough", marks=pytest.mark.slow)])


def run(profile: str, examples: int, check: Callable[[], None]) -> None:
    """Run the ``@given`` function ``check`` with ``examples`` examples (times the profile's scale)."""
    settings(settings.get_profile(f"spacy-elmo-{profile}"), max_examples=examples * SCALE[profile])(check)()
