"""The benchmark harness behind `python -m ember bench`: one module per kernel family, registered
in SUITES. Each suite validates ember against a reference before timing it, times ember and the
best installed peer in the same run, and reports rates, ratios and the fraction of the roofline."""
from . import elementwise, gemm

SUITES = {"elementwise": elementwise.run, "gemm": gemm.run}
