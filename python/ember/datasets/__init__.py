"""ember.datasets: small real data sets shipped inside the package."""
from .digits import load_digits  # noqa: F401
