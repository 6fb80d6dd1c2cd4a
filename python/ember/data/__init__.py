"""ember.data: datasets, the DataLoader and preprocessing (also reachable as em.preprocessing)."""
from . import preprocessing  # noqa: F401
from .dataset import Dataset, TensorDataset  # noqa: F401
from .loader import DataLoader  # noqa: F401
