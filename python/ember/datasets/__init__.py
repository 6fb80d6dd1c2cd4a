"""ember.datasets: small real data sets shipped inside the package."""
from .digits import load_digits  # noqa: F401
from .text import CharVocab, load_python_source  # noqa: F401
