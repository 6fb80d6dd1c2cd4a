"""nn: Module mechanics, containers, layers against float64 NumPy (forward and backward), gradcheck,
initialisers, dropout."""
import math

import numpy as np
import pytest

import ember as em
import ember.nn as nn
import ember.nn.functional as F
from helpers.check import assert_close, check_op, gradcheck_op, rng, tolerance


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 3, bias=False)])
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 2)})
        self.scale = nn.Parameter(em.ones(1))
        self.register_buffer("count", em.zeros(1))

    def forward(self, x):
        x = self.fc1(x).relu()
        for b in self.blocks:
            x = b(x)
        return {k: h(x) * self.scale for k, h in self.heads.items()}


def test_registration_and_names():
    m = Tiny()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                     "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    assert list(m.state_dict()) == names[:1] + ["count"] + names[1:]
    assert m.num_parameters() == 1 + 15 + 12 + 9 + 4 + 8
    assert "# 49 parameters" in repr(m)


def test_tied_parameter_listed_once():
    a = nn.Linear(3, 3)
    seq = nn.Sequential(a, a)
    assert len(list(seq.parameters())) == 2


def test_state_dict_round_trip_and_strict():
    a, b = Tiny(), Tiny()
    b.load_state_dict(a.state_dict())
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(x.detach().numpy(), y.detach().numpy()), k
    sd = dict(a.state_dict())
    sd.pop("fc1.bias")
    sd["extra"] = em.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['fc1.bias'\].*unexpected keys \['extra'\]"):
        b.load_state_dict(sd)
    res = b.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["fc1.bias"] and res.unexpected_keys == ["extra"]
    sd = dict(a.state_dict())
    sd["fc1.weight"] = em.zeros(2, 2)
    with pytest.raises(ValueError, match=r"fc1.weight: shape \(2, 2\)"):
        b.load_state_dict(sd)


def test_state_dict_values_are_detached_aliases_unless_keep_vars():
    """As in PyTorch: outside the graph, sharing the module's storage; keep_vars gives the
    Parameters themselves."""
    m = nn.Linear(3, 2)
    sd = m.state_dict()
    assert not any(v.requires_grad for v in sd.values())
    assert sd["weight"]._a.same_storage(m.weight._a)
    sd["bias"]._a.copy_(em.full((2,), 7.0)._a)
    assert np.all(m.bias.detach().numpy() == 7.0)
    kept = m.state_dict(keep_vars=True)
    assert kept["weight"] is m.weight and kept["bias"].requires_grad
    m(em.randn(4, 3)).sum().backward()
    assert kept["weight"].grad is not None and m.state_dict()["weight"].grad is None


def test_load_state_dict_writes_in_place():
    m = nn.Linear(2, 2)
    w = m.weight
    m.load_state_dict({"weight": em.ones(2, 2), "bias": em.zeros(2)})
    assert m.weight is w and np.all(w.detach().numpy() == 1)


def test_train_eval_freeze_apply_to():
    m = Tiny()
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m.fc1.requires_grad_(False)
    assert m.num_parameters(trainable_only=True) == m.num_parameters() - 15
    out = m(em.randn(5, 4))
    (out["a"].sum() + out["b"].sum()).backward()
    assert m.fc1.weight.grad is None and m.blocks[0].weight.grad is not None
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Tiny" and seen.count("Linear") == 5
    m.double()
    assert all(p.dtype == em.float64 for p in m.parameters())
    assert m(em.randn(2, 4, dtype="float64"))["a"].dtype == em.float64


def test_module_errors():
    class NoInit(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(RuntimeError, match="super"):
        NoInit()
    with pytest.raises(AttributeError, match="nothing"):
        nn.Linear(2, 2).nothing
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential().add(3)


def test_sequential_forms():
    a, b = nn.Linear(2, 3), nn.ReLU()
    for s in (nn.Sequential(a, b), nn.Sequential([a, b]), nn.Sequential().add(a).add(b)):
        assert len(s) == 2 and s[0] is a and s[1] is b
    x = em.randn(4, 2)
    assert_close(nn.Sequential(a, b)(x).detach().numpy(), np.maximum(a(x).detach().numpy(), 0), 1e-7)


@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (7, 13, 5), (33, 31, 17), (3, 129, 2)])
def test_linear_matches_numpy(device, n, i, o):
    lin = nn.Linear(i, o, device=device)
    w = lin.weight.detach().cpu().double().numpy()
    b = lin.bias.detach().cpu().double().numpy()
    check_op(lambda x: lin(x), lambda x: x @ w.T + b, [(n, i)], device, reduce_n=i)
    # And with respect to the weights: the functional form on the same inputs.
    r, _ = rng()
    x = r.uniform(-1, 1, (n, i))
    check_op(lambda W, B: F.linear(em.tensor(x, dtype="float32", device=device), W, B), lambda W, B: x @ W.T + B,
             [(o, i), (o,)], device, reduce_n=n * i)


def test_linear_init_bounds():
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound


@pytest.mark.parametrize("act,np_act", [("relu", lambda z: np.maximum(z, 0)), ("tanh", np.tanh),
                                        ("sigmoid", lambda z: 1 / (1 + np.exp(-z))), (None, lambda z: z),
                                        ("softmax", lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True))])
def test_dense_is_keras_dense(act, np_act):
    d = nn.Dense(5, activation=act)
    assert not d.built and list(d.parameters()) == []
    x = em.randn(6, 7)
    y = d(x)
    assert d.built and d.weight.shape == (5, 7)
    assert np.all(d.bias.detach().numpy() == 0)
    bound = math.sqrt(6 / 12)
    assert np.abs(d.weight.detach().numpy()).max() <= bound
    w = d.weight.detach().double().numpy()
    assert_close(y.detach().numpy(), np_act(x.double().numpy() @ w.T), 1e-5)
    check_op(lambda t: d(t), lambda t: np_act(t @ w.T), [(3, 7)], ulps=32, reduce_n=7)


def test_dense_input_shape_and_errors():
    assert nn.Dense(3, input_shape=(10,)).weight.shape == (3, 10)
    with pytest.raises(ValueError, match="activation"):
        nn.Dense(3, activation="swoosh")


def test_activation_modules(device):
    for mod, ref in [(nn.ReLU(), lambda x: np.maximum(x, 0)), (nn.Tanh(), np.tanh),
                     (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))), (nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
                     (nn.GELU(), None), (nn.Softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True))]:
        if ref is None:
            from math import erf
            ref = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / math.sqrt(2))))
        check_op(mod, ref, [(5, 7)], device, ulps=32)


def test_flatten_and_gradcheck():
    assert nn.Flatten()(em.zeros(2, 3, 4)).shape == (2, 12)
    assert nn.Flatten(0, 1)(em.zeros(2, 3, 4)).shape == (6, 4)
    lin = nn.Linear(4, 3).double()
    gradcheck_op(lambda x: F.linear(x, lin.weight, lin.bias, activation="relu"), [(5, 4)])


def test_dropout_seeded_scaled_and_off_in_eval(device):
    x = em.ones(1000, 100, device=device)
    d = nn.Dropout(0.3)
    em.manual_seed(7)
    a = d(x).cpu().numpy()
    em.manual_seed(7)
    b = d(x).cpu().numpy()
    assert np.array_equal(a, b)
    kept = a != 0
    assert abs(kept.mean() - 0.7) < 0.01
    assert_close(a[kept], np.full(kept.sum(), 1 / 0.7), 1e-6)
    d.eval()
    assert np.array_equal(d(x).cpu().numpy(), x.cpu().numpy())
    xg = em.randn(50, 20, requires_grad=True)
    d.train()
    out = d(xg)
    out.sum().backward()
    assert np.array_equal(xg.grad.numpy() != 0, out.detach().numpy() != 0)
    with pytest.raises(ValueError, match=r"\[Dropout\] p"):
        nn.Dropout(1.5)


def test_init_functions():
    w = em.empty(256, 128)
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6 / (256 + 128))
    assert np.abs(w.numpy()).max() <= a
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 128)) < 0.01
    nn.init.xavier_normal_(w)
    assert abs(w.numpy().std() - math.sqrt(2 / 384)) < 0.005
    nn.init.constant_(w, 3.0)
    assert np.all(w.numpy() == 3)
    with pytest.raises(ValueError, match="fan"):
        nn.init.xavier_uniform_(em.empty(5))


# ---- batch norm: training steps, then eval, against PyTorch -------------------------------------

BN_CASES = [("BatchNorm2d", (5, 3, 7, 4)), ("BatchNorm1d", (11, 3)), ("BatchNorm1d", (6, 3, 5))]


def _train_then_eval(layer, x_batches, cots, fw, steps):
    """SGD steps on sum(layer(x) * cot) through `fw` (ember or torch), then one eval-mode output."""
    opt = fw.optim.SGD(layer.parameters(), lr=0.2, momentum=0.9)
    for x, cot in zip(x_batches[:steps], cots):
        opt.zero_grad()
        (layer(fw.tensor(x)) * fw.tensor(cot)).sum().backward()
        opt.step()
    layer.eval()
    return layer(fw.tensor(x_batches[steps]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("cls,shape", BN_CASES)
def test_batch_norm_train_then_eval_matches_torch(cls, shape, momentum, dtype):
    """Running mean, unbiased running variance, momentum (None: cumulative average), the affine
    parameters after SGD steps through the backward, and the eval-mode output all follow PyTorch."""
    torch = pytest.importorskip("torch")
    r, _ = rng()
    steps = 4
    xs = [(r.standard_normal(shape) * 3 + 2).astype(dtype) for _ in range(steps + 1)]
    cots = [r.standard_normal(shape).astype(dtype) for _ in range(steps)]
    t_layer = getattr(torch.nn, cls)(3, momentum=momentum).to(getattr(torch, dtype))
    e_layer = getattr(nn, cls)(3, momentum=momentum, dtype=dtype)
    with torch.no_grad():  # non-trivial affine parameters, the same in both
        t_layer.weight.copy_(torch.tensor(r.uniform(0.5, 2.0, 3)))
        t_layer.bias.copy_(torch.tensor(r.standard_normal(3)))
    e_layer.load_state_dict({k: em.tensor(v.numpy()) for k, v in t_layer.state_dict().items()})
    y_e = _train_then_eval(e_layer, xs, cots, em, steps)
    y_t = _train_then_eval(t_layer, xs, cots, torch, steps)
    count = int(np.prod(shape)) // 3
    tol = 1e-10 if dtype == "float64" else tolerance(dtype, count, ulps=64)
    for k, v in t_layer.state_dict().items():
        assert_close(e_layer.state_dict()[k].detach().numpy(), v.numpy(), tol, msg=k)
    assert_close(y_e.detach().numpy(), y_t.detach().numpy(), tol, msg="eval output")


def test_batch_norm_constructor_checks():
    for kwargs, what in [({"num_features": 0}, "num_features"), ({"num_features": 2.5}, "num_features"),
                         ({"num_features": 3, "eps": 0.0}, "eps"), ({"num_features": 3, "momentum": 1.5}, "momentum")]:
        with pytest.raises(ValueError, match=rf"\[BatchNorm2d\] {what}"):
            nn.BatchNorm2d(**kwargs)
