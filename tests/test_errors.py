"""Every bad input is a Python exception of the right type whose message names the op and the
offending shapes or values ("[op] message (shapes ...)"): no crash, no silent garbage."""
import os
import re

import numpy as np
import pytest

import ember as em
import ember.nn as nn
from ember.ops import pool as ops_pool


def raises(exc, *fragments):
    """pytest.raises that also requires every fragment (plain text) in the message, in order."""
    return pytest.raises(exc, match=".*".join(re.escape(f) for f in fragments))


def x53():
    return em.randn(5, 3)


# ---- shapes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "eq"])
def test_binary_shape_mismatch(op):
    with raises(ValueError, f"[{op}]", "(3, 5)", "(7,)"):
        getattr(em, op)(em.randn(3, 5), em.randn(7))


def test_add_operator_shape_mismatch():
    with raises(ValueError, "[add]", "(2, 17)", "(3, 1)"):
        em.randn(2, 17) + em.randn(3, 1)


def test_where_shape_mismatch():
    with raises(ValueError, "[where]", "(13,)", "(2,)"):
        em.where(em.randn(13) > 0, em.randn(13), em.randn(2))


@pytest.mark.parametrize("fn, fragments", [
    (lambda: x53().reshape(4, 4), ("[reshape]", "15 elements", "(4, 4)")),
    (lambda: x53().reshape(2, -1), ("[reshape]", "15 elements", "(2, -1)")),
    (lambda: x53().reshape(-1, -1), ("[reshape]", "only one dimension can be -1")),
    (lambda: x53().reshape(-2, 3), ("[reshape]", "(-2, 3)")),
    (lambda: x53().view(16), ("[view]", "15 elements", "(16,)")),
    (lambda: x53().t().view(15), ("[view]", "(15,)", "not compatible")),
    (lambda: x53().expand(4, 3), ("[expand]", "(5, 3)", "(4, 3)")),
], ids=["size", "inferred", "two-inferred", "negative", "view-size", "view-strides", "expand"])
def test_bad_target_shape(fn, fragments):
    with raises(ValueError, *fragments):
        fn()


@pytest.mark.parametrize("fn, op", [
    (lambda: em.zeros(2, -1), "zeros"),
    (lambda: em.ones(-1), "ones"),
    (lambda: em.empty(5, -2), "empty"),
    (lambda: em.full((3, -7), 1.0), "full"),
    (lambda: em.rand(3, -1), "rand"),
    (lambda: em.randn(-3), "randn"),
    (lambda: em.randint(0, 5, (-1, 2)), "randint"),
])
def test_negative_dimension(fn, op):
    with raises(ValueError, f"[{op}] negative dimension"):
        fn()


@pytest.mark.parametrize("fn, op", [
    (lambda: em.zeros(2.5), "zeros"),
    (lambda: em.randn(3, 1.0), "randn"),
    (lambda: x53().reshape(2.5, 6), "reshape"),
    (lambda: x53().permute(0.0, 1), "permute"),
])
def test_non_integer_sizes(fn, op):
    with raises(TypeError, f"[{op}] expected integers"):
        fn()


@pytest.mark.parametrize("tensors, dim, fragments", [
    (lambda: [em.randn(2, 3), em.randn(2, 4)], 0, ("(2, 3)", "(2, 4)")),
    (lambda: [em.randn(2, 3), em.randn(5, 3)], 1, ("(2, 3)", "(5, 3)")),
    (lambda: [em.randn(2, 3), em.randn(3)], 0, ("(2, 3)", "(3,)")),
])
def test_cat_shape_mismatch(tensors, dim, fragments):
    with raises(ValueError, "[cat]", *fragments):
        em.cat(tensors(), dim)


@pytest.mark.parametrize("item, name", [(3, "int"), (np.ones(2), "ndarray"), ([1.0, 2.0], "list")], ids=str)
def test_cat_of_something_not_a_tensor(item, name):
    with raises(TypeError, "[cat] expects tensors, got", name):
        em.cat([em.ones(2), item])
    with raises(TypeError, "[stack] expects tensors, got", name):
        em.stack([em.ones(2), item])


def test_stack_shape_mismatch():
    with raises(ValueError, "[stack]", "(3,)", "(4,)"):
        em.stack([em.randn(3), em.randn(3), em.randn(4)])


@pytest.mark.parametrize("fn, op", [(lambda: em.cat([]), "cat"), (lambda: em.stack([]), "stack")])
def test_empty_tensor_list(fn, op):
    with raises(ValueError, f"[{op}] expects a non-empty list"):
        fn()


# ---- dtypes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda: em.arange(3).requires_grad_(),
    lambda: em.tensor([1, 2], requires_grad=True),
    lambda: em.zeros(2, dtype=em.bool, requires_grad=True),
    lambda: em.ones(2, dtype=em.int32).requires_grad_(True),
], ids=["arange", "tensor", "bool", "int32"])
def test_requires_grad_on_integer_tensor(fn):
    with raises(TypeError, "[requires_grad]", "floating"):
        fn()


@pytest.mark.parametrize("index", [em.tensor([1.0]), np.array([0.5]), [1.0, 2.0]], ids=["tensor", "numpy", "list"])
def test_float_array_index(index):
    with raises(IndexError, "[index]", "float"):
        x53()[index]


def test_float_scalar_index():
    with raises(IndexError, "[index] unsupported index 1.5"):
        x53()[1.5]


@pytest.mark.parametrize("op", ["index_select", "gather"])
def test_float_index_tensor_for_index_ops(op):
    with raises(IndexError, "[index]", "integer or bool", "float32"):
        getattr(x53(), op)(0, em.zeros(5, 3))


@pytest.mark.parametrize("fn, op", [(lambda: em.rand(3, dtype=em.int64), "rand"),
                                    (lambda: em.randn(3, dtype=em.bool), "randn")])
def test_random_floats_need_a_floating_dtype(fn, op):
    with raises(TypeError, f"[{op}] needs a floating dtype"):
        fn()


def test_unknown_dtype():
    with raises(TypeError, "[dtype]", "float128"):
        em.zeros(2, dtype="float128")


# ---- indices ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fn, fragments", [
    (lambda: em.randn(5)[10], ("[index]", "index 10", "size 5", "(5,)")),
    (lambda: em.randn(5)[-6], ("[index]", "index -6", "size 5", "(5,)")),
    (lambda: x53()[2, 3], ("[index]", "index 3", "dimension 1", "size 3", "(5, 3)")),
    (lambda: x53()[None, ..., 4], ("[index]", "index 4", "dimension 1", "size 3", "(5, 3)")),
    (lambda: em.randn(5)[em.tensor([5])], ("[index]", "index 5", "size 5", "(5,)")),
    (lambda: x53()[em.tensor([0, 7, 1])], ("[index]", "index 7", "size 5", "(5, 3)")),
    (lambda: x53()[:, em.tensor([-4])], ("[index]", "index -4", "size 3", "(5, 3)")),
    (lambda: x53()[[1, 2], [0, 3]], ("[index]", "index 3", "size 3", "(5, 3)")),
    (lambda: x53().index_select(0, em.tensor([1, 5])), ("[index_select]", "index 5", "size 5", "(5, 3)")),
    (lambda: x53().gather(1, em.full((5, 2), 3)), ("[gather]", "index 3", "size 3", "(5, 3)")),
], ids=["int", "negative-int", "second-dim", "ellipsis", "tensor", "tensor-2d", "negative-tensor", "lists",
        "index_select", "gather"])
def test_index_out_of_range(fn, fragments):
    with raises(IndexError, *fragments):
        fn()


def test_too_many_indices():
    with raises(IndexError, "[index] too many indices", "(5, 3)"):
        x53()[1, 2, 0]


@pytest.mark.parametrize("mask_shape, indexed", [((2,), "(5,)"), ((3, 5), "(5, 3)"), ((5, 2), "(5, 3)")])
def test_bool_mask_of_wrong_shape(mask_shape, indexed):
    x = x53() if len(mask_shape) == 2 else em.randn(5)
    mask = em.randn(*mask_shape) > 0
    with raises(IndexError, "[index] boolean index", str(tuple(mask.shape)), indexed):
        x[mask]


def test_gather_index_shape_mismatch():
    with raises(ValueError, "[gather]", "(2, 2)", "(5, 3)"):
        x53().gather(1, em.zeros(2, 2, dtype=em.int64))


# ---- dims ------------------------------------------------------------------------------------

REDUCTIONS = ["sum", "mean", "var", "prod", "argmax", "argmin", "max", "min", "any", "all", "softmax",
              "log_softmax", "logsumexp"]


@pytest.mark.parametrize("dim", [2, -3, 7])
@pytest.mark.parametrize("op", REDUCTIONS)
def test_reduction_dim_out_of_range(op, dim):
    with raises(IndexError, f"[{op}] dim {dim} out of range", "2-d"):
        getattr(em, op)(x53(), dim=dim)


def test_reduction_dim_tuple_out_of_range():
    with raises(IndexError, "[sum] dim 4 out of range"):
        em.randn(2, 3, 4).sum(dim=(0, 4))


@pytest.mark.parametrize("fn, op", [
    (lambda x: x.transpose(0, 2), "transpose"),
    (lambda x: x.unsqueeze(3), "unsqueeze"),
    (lambda x: x.squeeze(2), "squeeze"),
    (lambda x: x.squeeze(-3), "squeeze"),
    (lambda x: x.flatten(0, 2), "flatten"),
    (lambda x: x.split(2, dim=2), "split"),
    (lambda x: x.chunk(2, dim=-3), "chunk"),
    (lambda x: x.index_select(2, em.tensor([0])), "index_select"),
    (lambda x: x.gather(-3, em.zeros(5, 3, dtype=em.int64)), "gather"),
    (lambda x: em.cat([x, x], 2), "cat"),
    (lambda x: em.stack([x, x], 4), "stack"),
])
def test_shape_op_dim_out_of_range(fn, op):
    with raises(IndexError, f"[{op}] dim", "out of range"):
        fn(x53())


# ---- devices ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "CPU", "cpu:0", "cuda:-1", "", "cuda:0:1"])
@pytest.mark.parametrize("make", [lambda d: em.zeros(2, device=d), lambda d: em.randn(3).to(d),
                                  lambda d: em.tensor([1.0], device=d)], ids=["zeros", "to", "tensor"])
def test_bad_device_string(make, spec):
    with raises(ValueError, "[device] unknown device", repr(spec)):
        make(spec)


def test_device_of_wrong_type():
    with raises(TypeError, "[device] expected a string"):
        em.zeros(2, device=2.5)


@pytest.mark.skipif(em.cuda.is_available(), reason="checks the error raised without a GPU")
@pytest.mark.parametrize("fn", [lambda: em.randn(3).cuda(), lambda: em.zeros(2, device="cuda"),
                                lambda: em.randn(2, device="cuda:0"), lambda: em.tensor([1.0]).to("cuda"),
                                lambda: em.cuda.synchronize()],
                         ids=["cuda()", "zeros", "randn", "to", "synchronize"])
def test_cuda_without_gpu(fn):
    with raises(RuntimeError, "[cuda]"):
        fn()


@pytest.mark.cuda
@pytest.mark.parametrize("fn, op", [
    (lambda c, g: c * g, "mul"),
    (lambda c, g: em.where(c > 0, g, g), "where"),
    (lambda c, g: em.cat([c, g]), "cat"),
    (lambda c, g: g.index_select(0, em.tensor([0])), "index"),
])
def test_mixing_devices(fn, op):
    with raises(ValueError, f"[{op}]", "cpu"):
        fn(em.randn(3), em.randn(3, device="cuda"))


# ---- autograd, conversion, interop -----------------------------------------------------------

def test_backward_on_non_scalar_needs_grad():
    y = em.randn(3, 7, requires_grad=True) * 2
    with raises(RuntimeError, "[backward]", "scalar outputs", "(3, 7)"):
        y.backward()


def test_backward_without_grad():
    with raises(RuntimeError, "[backward] tensor does not require grad"):
        em.randn(3).sum().backward()


def test_backward_grad_of_wrong_shape():
    y = em.randn(3, requires_grad=True) * 2
    with raises(ValueError, "[backward] grad shape (4,)", "(3,)"):
        y.backward(em.ones(4))


def test_item_needs_one_element():
    with raises(ValueError, "[item]", "(5, 3)"):
        x53().item()


def test_truth_value_of_many_elements():
    with raises(RuntimeError, "[bool]", "15 elements"):
        bool(x53())


@pytest.mark.parametrize("obj", [[1.0, 2.0], 3, "abc", {"a": 1}, None])
def test_from_dlpack_rejects_non_producers(obj):
    with raises(TypeError, "[from_dlpack]", "does not implement __dlpack__"):
        em.from_dlpack(obj)


def test_setitem_shape_mismatch_names_setitem():
    x = em.zeros(3, 4)
    with pytest.raises(ValueError, match=r"\[setitem\].*\(5,\).*\(4,\)"):
        x[0] = em.ones(5)


def test_to_unknown_dtype_string_is_a_dtype_error():
    with pytest.raises(TypeError, match=r"\[dtype\]"):
        em.ones(2).to("float128")


def test_refused_draw_does_not_advance_the_generator():
    g = em.Generator().manual_seed(3)
    before = g.get_state()
    with pytest.raises(TypeError, match=r"\[rand\]"):
        em.rand(4, dtype="int64", generator=g)
    assert g.get_state() == before


# ---- sizes: refused before allocating ----------------------------------------------------------

@pytest.mark.parametrize("fn, op", [
    (lambda: em.ones(2 ** 40, 2 ** 30), "ones"),            # 2^72 bytes: the byte count would wrap in int64
    (lambda: em.zeros(2 ** 62, 2 ** 62), "zeros"),
    (lambda: em.zeros(2 ** 40), "zeros"),                   # 4 TiB: addressable, more than the host has
    (lambda: em.empty(2 ** 31, 2 ** 31, 4), "empty"),
    (lambda: em.full((2 ** 40,), 1.0), "full"),
    (lambda: em.rand(2 ** 40), "rand"),
    (lambda: em.randn(2 ** 20, 2 ** 20, 2 ** 20), "randn"),
    (lambda: em.randint(0, 5, (2 ** 40,)), "randint"),
    (lambda: em.arange(0, 2 ** 50), "arange"),
    (lambda: em.linspace(0, 1, 2 ** 50), "linspace"),
    (lambda: em.zeros(1).expand(2 ** 40, 2 ** 30).contiguous(), "empty"),  # the core's own overflow check
], ids=["ones-wraps", "zeros-wraps", "zeros-4TiB", "empty", "full", "rand", "randn", "randint", "arange",
        "linspace", "contiguous"])
def test_huge_tensor_is_a_memory_error(fn, op):
    with raises(MemoryError, f"[{op}]", "bytes"):
        fn()


def test_a_computed_result_too_large_says_its_shape():
    """A broadcast product of 2^40 float32 (4 TiB): the allocator's refusal names the result's shape."""
    with raises(MemoryError, "cannot allocate 4398046511104 bytes", "shape (1048576, 1048576) of float32"):
        em.ones(2 ** 20) * em.ones(2 ** 20, 1)


def test_zero_sized_shape_with_huge_dims_is_fine():
    assert em.zeros(2 ** 62, 2 ** 62, 0).shape == (2 ** 62, 2 ** 62, 0)


@pytest.mark.parametrize("fn, exc, fragments", [
    (lambda: em.arange(0, 5, -1), ValueError, ("[arange] step -1 points away from end",)),
    (lambda: em.arange(5, 0, 1), ValueError, ("[arange] step 1 points away from end",)),
    (lambda: em.linspace(0, 1, 2.5), TypeError, ("[linspace] steps must be an integer", "2.5")),
    (lambda: em.eye(-1), ValueError, ("[eye] negative dimension",)),
    (lambda: em.eye(3, 2.5), TypeError, ("[eye] expected integers",)),
    (lambda: em.randperm(-2), ValueError, ("[randperm] negative dimension",)),
    (lambda: em.randn(4).chunk(0), ValueError, ("[chunk] chunks must be an int >= 1", "0")),
    (lambda: em.randn(4).chunk(-1), ValueError, ("[chunk] chunks must be an int >= 1", "-1")),
    (lambda: em.tensor([[1.0, 2.0], [3.0]]), ValueError, ("[tensor] nested sequences must be rectangular",)),
], ids=["arange-up", "arange-down", "linspace-steps", "eye", "eye-float", "randperm", "chunk-0", "chunk-neg",
        "ragged"])
def test_creation_arguments(fn, exc, fragments):
    with raises(exc, *fragments):
        fn()


# ---- optimizers, schedulers, clipping: hyperparameters -----------------------------------------

def _params():
    return [em.zeros(3, requires_grad=True)]


@pytest.mark.parametrize("make, fragments", [
    (lambda: em.optim.RMSprop(_params(), alpha=-1), ("[RMSprop] alpha must be in [0, 1]", "-1")),
    (lambda: em.optim.RMSprop(_params(), alpha=1.5), ("[RMSprop] alpha", "1.5")),
    (lambda: em.optim.RMSprop(_params(), eps=-1e-8), ("[RMSprop] eps must be >= 0",)),
    (lambda: em.optim.RMSprop(_params(), momentum=-0.9), ("[RMSprop] momentum must be >= 0",)),
    (lambda: em.optim.RMSprop(_params(), weight_decay=-1), ("[RMSprop] weight_decay must be >= 0",)),
    (lambda: em.optim.RMSprop(_params(), lr=-0.1), ("[RMSprop] lr must be >= 0",)),
    (lambda: em.optim.SGD(_params(), lr=-1), ("[SGD] lr must be >= 0",)),
    (lambda: em.optim.SGD(_params(), lr=float("nan")), ("[SGD] lr must be >= 0", "nan")),
    (lambda: em.optim.SGD(_params(), lr="fast"), ("[SGD] lr must be >= 0", "'fast'")),
    (lambda: em.optim.SGD(_params(), momentum=-0.5), ("[SGD] momentum must be >= 0",)),
    (lambda: em.optim.SGD(_params(), momentum=0.9, dampening=2), ("[SGD] dampening must be in [0, 1]",)),
    (lambda: em.optim.SGD(_params(), weight_decay=-1e-4), ("[SGD] weight_decay must be >= 0",)),
    (lambda: em.optim.SGD(_params(), nesterov=True), ("[SGD] nesterov needs momentum > 0",)),
    (lambda: em.optim.Adam(_params(), lr=-1e-3), ("[Adam] lr must be >= 0",)),
    (lambda: em.optim.Adam(_params(), betas=(0.9, 1.0)), ("[Adam] betas must be a pair of values in [0, 1)",)),
    (lambda: em.optim.Adam(_params(), betas=(-0.1, 0.9)), ("[Adam] betas",)),
    (lambda: em.optim.Adam(_params(), betas=0.9), ("[Adam] betas", "0.9")),
    (lambda: em.optim.Adam(_params(), betas=(0.9, 0.99, 0.5)), ("[Adam] betas",)),
    (lambda: em.optim.Adam(_params(), eps=-1), ("[Adam] eps must be >= 0",)),
    (lambda: em.optim.Adam(_params(), weight_decay=-1), ("[Adam] weight_decay must be >= 0",)),
    (lambda: em.optim.AdamW(_params(), weight_decay=-0.01), ("[AdamW] weight_decay must be >= 0",)),
    (lambda: em.optim.AdamW(_params(), betas=(1.5, 0.9)), ("[AdamW] betas",)),
    (lambda: em.optim.Adam(lr=-1), ("[Adam] lr must be >= 0",)),                 # Keras style: no params yet
    (lambda: em.optim.RMSprop(alpha=-1), ("[RMSprop] alpha",)),
    (lambda: em.optim.SGD([{"params": _params(), "momentum": -1}], lr=0.1), ("[SGD] momentum must be >= 0",)),
], ids=lambda v: None if callable(v) else v[0][:40])
def test_optimizer_hyperparameters(make, fragments):
    with raises(ValueError, *fragments):
        make()


def _sgd():
    return em.optim.SGD(_params(), lr=0.1)


@pytest.mark.parametrize("make, exc, fragments", [
    (lambda: em.optim.lr_scheduler.StepLR(_sgd(), step_size=0), ValueError, ("[StepLR] step_size",)),
    (lambda: em.optim.lr_scheduler.StepLR(_sgd(), step_size=2.5), ValueError, ("[StepLR] step_size", "2.5")),
    (lambda: em.optim.lr_scheduler.StepLR(_sgd(), step_size=2, gamma=-0.5), ValueError, ("[StepLR] gamma",)),
    (lambda: em.optim.lr_scheduler.CosineAnnealingLR(_sgd(), T_max=0), ValueError, ("[CosineAnnealingLR] T_max",)),
    (lambda: em.optim.lr_scheduler.CosineAnnealingLR(_sgd(), T_max=5, eta_min=-1), ValueError,
     ("[CosineAnnealingLR] eta_min",)),
    (lambda: em.optim.lr_scheduler.LinearWarmup(_sgd(), warmup_steps=-1), ValueError, ("[LinearWarmup]",)),
    (lambda: em.optim.lr_scheduler.LinearWarmup(_sgd(), 10, total_steps=5), ValueError, ("[LinearWarmup]",)),
    (lambda: em.optim.lr_scheduler.LinearWarmup(_sgd(), 10, start_factor=2.0), ValueError,
     ("[LinearWarmup] start_factor must be in [0, 1]",)),
    (lambda: em.optim.lr_scheduler.StepLR("sgd", step_size=2), TypeError, ("[StepLR] expects an ember Optimizer",)),
    (lambda: em.optim.lr_scheduler.StepLR(em.optim.SGD(lr=0.1), step_size=2), RuntimeError, ("[SGD] has no parameters",)),
    (lambda: nn.utils.clip_grad_norm_(_params(), -1.0), ValueError, ("[clip_grad_norm_] max_norm must be >= 0",)),
    (lambda: nn.utils.clip_grad_norm_(_params(), 1.0, norm_type=0), ValueError, ("[clip_grad_norm_] norm_type",)),
], ids=["step_size-0", "step_size-float", "gamma", "T_max", "eta_min", "warmup", "total", "start_factor",
        "not-an-optimizer", "unbound", "max_norm", "norm_type"])
def test_scheduler_and_clipping_arguments(make, exc, fragments):
    with raises(exc, *fragments):
        make()


def test_compile_of_a_model_with_unknown_input_size_says_what_is_missing():
    model = nn.Sequential(nn.Dense(4, activation="relu"), nn.Dense(1))
    model.compile(optimizer="adam", loss="mse")
    with raises(RuntimeError, "[Adam] has no parameters", "0 (Dense), 1 (Dense)", "input_shape"):
        model._compiled.optimizer.step()
    assert "not built: layers 0 (Dense), 1 (Dense) do not know their input size" in model.summary(print_fn=len)
    model.fit(np.zeros((4, 3), np.float32), np.zeros((4, 1), np.float32), epochs=1, verbose=0)  # builds, binds
    assert "not built" not in model.summary(print_fn=len)


# ---- layers, losses, data: sizes and options ---------------------------------------------------


@pytest.mark.parametrize("make, fragments", [
    (lambda: nn.Linear(0, 3), ("[Linear] in_features must be a positive int", "0")),
    (lambda: nn.Linear(3, -2), ("[Linear] out_features",)),
    (lambda: nn.Linear(2.5, 3), ("[Linear] in_features", "2.5")),
    (lambda: nn.Dense(0), ("[Dense] units",)),
    (lambda: nn.Dense(4)(em.zeros(2, 0)), ("[Dense] input size",)),
    (lambda: nn.Embedding(0, 3), ("[Embedding] num_embeddings",)),
    (lambda: nn.Embedding(5, 0), ("[Embedding] embedding_dim",)),
    (lambda: nn.Conv2d(0, 3, 3), ("[Conv2d] in_channels",)),
    (lambda: nn.Conv1d(3, 0, 3), ("[Conv1d] out_channels",)),
    (lambda: nn.Conv2d(3, 3, 0), ("[Conv2d] kernel_size", ">= 1")),
    (lambda: nn.Conv2d(3, 3, (3, 3, 3)), ("[Conv2d] kernel_size", "2 ints")),
    (lambda: nn.Conv2d(3, 3, 3, stride=0), ("[Conv2d] stride", ">= 1")),
    (lambda: nn.Conv2d(3, 3, 3, padding=-1), ("[Conv2d] padding", ">= 0")),
    (lambda: nn.Conv2d(3, 3, 3, dilation=(1, 0)), ("[Conv2d] dilation",)),
    (lambda: nn.MaxPool2d(0), ("[MaxPool2d] kernel_size",)),
    (lambda: nn.MaxPool2d(2, stride=0), ("[MaxPool2d] stride",)),
    (lambda: nn.AvgPool2d(2, padding=-1), ("[AvgPool2d] padding",)),
    (lambda: nn.AdaptiveAvgPool2d(0), ("[AdaptiveAvgPool2d] output_size",)),
    (lambda: ops_pool.max_pool2d(em.zeros(1, 1, 4, 4), 0), ("[max_pool2d] kernel_size",)),
    (lambda: ops_pool.adaptive_avg_pool2d(em.zeros(1, 1, 4, 4), (2, 0)), ("[adaptive_avg_pool2d] output_size",)),
    (lambda: nn.LayerNorm(0), ("[LayerNorm] normalized_shape",)),
    (lambda: nn.LayerNorm(3, eps=-1e-5), ("[LayerNorm] eps must be > 0",)),
    (lambda: nn.BatchNorm1d(0), ("[BatchNorm1d] num_features",)),
    (lambda: nn.BatchNorm2d(3, momentum=-0.1), ("[BatchNorm2d] momentum",)),
    (lambda: nn.MultiheadAttention(0, 1), ("[MultiheadAttention] embed_dim",)),
    (lambda: nn.MultiheadAttention(4, 0), ("[MultiheadAttention] num_heads",)),
    (lambda: nn.MultiheadAttention(4, 2, dropout=1.0), ("[MultiheadAttention] dropout must be in [0, 1)",)),
    (lambda: nn.TransformerEncoderLayer(4, 2, dim_feedforward=0), ("[TransformerEncoderLayer] dim_feedforward",)),
    (lambda: nn.GELU("fast"), ("[GELU] approximate",)),
    (lambda: nn.MSELoss(reduction="avg"), ("[MSELoss] reduction", "'avg'")),
    (lambda: nn.L1Loss(reduction="avg"), ("[L1Loss] reduction",)),
    (lambda: nn.CrossEntropyLoss(reduction="batchmean"), ("[CrossEntropyLoss] reduction",)),
    (lambda: nn.CrossEntropyLoss(label_smoothing=1.5), ("[CrossEntropyLoss] label_smoothing",)),
    (lambda: nn.BCEWithLogitsLoss(reduction=None), ("[BCEWithLogitsLoss] reduction",)),
    (lambda: nn.NLLLoss(reduction="avg"), ("[NLLLoss] reduction",)),
    (lambda: em.data.DataLoader(em.data.TensorDataset(em.zeros(4, 2)), batch_size=2.5), ("[DataLoader] batch_size",)),
], ids=lambda v: None if callable(v) else v[0][:30])
def test_layer_and_loss_arguments(make, fragments):
    with raises(ValueError, *fragments):
        make()


@pytest.mark.parametrize("make, fragments", [
    (lambda: nn.Softmax(dim=1.5), ("[Softmax] dim must be an int",)),
    (lambda: nn.Flatten(0.5), ("[Flatten] start_dim must be an int",)),
], ids=["softmax", "flatten"])
def test_layer_dims_must_be_ints(make, fragments):
    with raises(TypeError, *fragments):
        make()


def test_computed_result_larger_than_memory_is_refused_before_allocation():
    """A result no machine's memory holds (an op on a stride-0 view of a small tensor) is a
    MemoryError from the CPU allocator, not an overcommitted block that kills the process later."""
    host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    rows = host // 4 // 2 ** 20 + 1  # float32 rows of 2^20: one row more than the machine holds
    x = em.ones(1, 2 ** 20).expand(rows, 2 ** 20)
    with pytest.raises(MemoryError, match="more than this machine's memory"):
        x + 1.0
