"""Hypothesis profiles for the fuzz suite, chosen by HYPOTHESIS_PROFILE (default "ci"):

    ci       20 examples per test: the whole fuzz suite in about half a minute at one thread
    nightly  1500 examples per test: an hour-scale run for a scheduled job

Both have no deadline (timings on shared CI machines are noise) and no example database (a CI run
must not depend on files a previous run left). A failure prints the reproducing blob.

The suite also counts the cases it ran per op family and prints the totals at the end of the run,
the figure docs/reliability.md quotes."""
import os

from fuzz_inputs import CASES
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=20, **_COMMON)
settings.register_profile("nightly", max_examples=1500, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def pytest_terminal_summary(terminalreporter):
    if CASES:
        total = sum(CASES.values())
        terminalreporter.write_line(f"fuzz: {total} cases over {len(CASES)} ops "
                                    f"(profile {PROFILE})")
