"""Autograd: the graph and backward engine (graph.py) and numerical gradient checking."""
from .graph import (enable_grad, is_grad_enabled, no_grad, queue_callback, register_post_accumulate_grad_hook,
                    set_grad_enabled)
from .gradcheck import gradcheck
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly

__all__ = ["detect_anomaly", "enable_grad", "gradcheck", "is_anomaly_enabled", "is_grad_enabled", "no_grad",
           "queue_callback", "register_post_accumulate_grad_hook", "set_detect_anomaly", "set_grad_enabled"]
