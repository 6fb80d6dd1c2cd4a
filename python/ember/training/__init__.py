"""ember.training: the Keras-style loop (compile/fit/evaluate/predict on every Module), callbacks,
metrics and History."""
from . import callbacks, metrics  # noqa: F401
from .history import History  # noqa: F401
from . import model  # noqa: F401  (binds compile/fit/evaluate/predict/summary onto nn.Module)
