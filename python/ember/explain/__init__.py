"""ember.explain: why a model says what it says.

Attributions over the input (each returns a NumPy array shaped like x):
    saliency(model, x, target)               |d f_target / d x|
    gradient_x_input(model, x, target)       x * d f_target / d x
    integrated_gradients(model, x, target)   (x - baseline) * mean gradient on the straight path;
                                             completeness: sum = f(x) - f(baseline)
    smoothgrad(model, x, target)             the gradient averaged over noisy copies of x
Attention (ember's MultiheadAttention, the transformer layers built on it, and BERT):
    attention_maps(model, *inputs)           one (B, heads, L, S) array per attention layer
    attention_rollout(maps)                  (B, L, S): how much each output token draws on each input
Pictures (matplotlib): plot_attributions, plot_attention."""
from .attention import attention_maps, attention_rollout, record_attention  # noqa: F401
from .gradients import (completeness_gap, gradient_x_input, integrated_gradients, saliency,  # noqa: F401
                        smoothgrad)
from .plot import plot_attention, plot_attributions  # noqa: F401

__all__ = ["attention_maps", "attention_rollout", "completeness_gap", "gradient_x_input", "integrated_gradients",
           "plot_attention", "plot_attributions", "record_attention", "saliency", "smoothgrad"]
