"""Loss modules: each holds its options and calls the functional form."""
from __future__ import annotations

from . import functional as F
from .checks import rate, reduction as _reduction
from .module import Module


class MSELoss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        reduction = _reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class L1Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        reduction = _reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input, target):
        return F.l1_loss(input, target, self.reduction)


class CrossEntropyLoss(Module):
    """Logits (N, C) or (N, C, d...) against class indices; label smoothing and ignore_index as in
    PyTorch. Runs the fused log-softmax + NLL kernel."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        reduction = _reduction(type(self).__name__, reduction)
        label_smoothing = rate("CrossEntropyLoss", "label_smoothing", label_smoothing)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.ignore_index, self.label_smoothing, self.reduction)

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""


class BCEWithLogitsLoss(Module):
    def __init__(self, reduction: str = "mean", pos_weight=None):
        super().__init__()
        reduction = _reduction(type(self).__name__, reduction)
        self.reduction, self.pos_weight = reduction, pos_weight

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.pos_weight, self.reduction)


class NLLLoss(Module):
    def __init__(self, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        reduction = _reduction(type(self).__name__, reduction)
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, input, target):
        return F.nll_loss(input, target, self.ignore_index, self.reduction)
