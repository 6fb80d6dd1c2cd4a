"""ember.optim: optimizers with fused update kernels, learning-rate schedules, gradient clipping."""
from . import lr_scheduler  # noqa: F401
from .clip import clip_grad_norm_  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .optimizers import SGD, Adam, AdamW, RMSprop  # noqa: F401
