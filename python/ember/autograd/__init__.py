"""Autograd: the graph and backward engine (graph.py) and numerical gradient checking."""
from .graph import (enable_grad, is_grad_enabled, no_grad, queue_callback, register_post_accumulate_grad_hook,
                    set_grad_enabled)
from .gradcheck import gradcheck

__all__ = ["enable_grad", "gradcheck", "is_grad_enabled", "no_grad", "queue_callback",
           "register_post_accumulate_grad_hook", "set_grad_enabled"]
