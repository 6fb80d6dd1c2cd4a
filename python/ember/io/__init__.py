"""ember.io: safetensors files (em.save / em.load) and atomic, resumable checkpoints."""
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: F401
from .safetensors_io import load, save  # noqa: F401
