"""ember.nn.utils: gradient clipping (implemented in ember.optim.clip)."""
from ..optim.clip import clip_grad_norm_  # noqa: F401
