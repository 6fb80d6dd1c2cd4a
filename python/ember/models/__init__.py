"""ember.models: reference models built from ember.nn."""
from .cnn import DigitsCNN  # noqa: F401
