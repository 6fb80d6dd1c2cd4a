"""Recurrent layers against a float64 NumPy reference written from the equations, and against
PyTorch (same state_dict) when installed: outputs, final states and every gradient, for each kind,
1-2 layers, both directions, batch_first both ways, odd sizes and variable lengths; gradcheck;
bad input."""
import numpy as np
import pytest

import ember as em
import ember.nn as nn
from helpers.check import assert_close, gradcheck_op, rng

KINDS = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]


def sig(x):
    return 1 / (1 + np.exp(-x))


def np_cell(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of the PyTorch equations in float64."""
    xg, hg = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if mode == "LSTM":
        i, f, g, o = np.split(xg + hg, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c), c
    if mode == "GRU":
        xr, xz, xn = np.split(xg, 3, axis=1)
        hr, hz, hn = np.split(hg, 3, axis=1)
        r, z = sig(xr + hr), sig(xz + hz)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h, c
    a = xg + hg
    return (np.tanh(a) if mode == "RNN_TANH" else np.maximum(a, 0)), c


def np_rnn(model, x, lengths=None):
    """Reference forward of a whole nn.RNN/LSTM/GRU (time-major x) with its own weights."""
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    T, B, _ = x.shape
    H, d = model.hidden_size, 2 if model.bidirectional else 1
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    hs, cs = [], []
    for layer in range(model.num_layers):
        outs = []
        for direction in range(d):
            s = f"l{layer}{'_reverse' if direction else ''}"
            w = [p[f"weight_ih_{s}"], p[f"weight_hh_{s}"], p.get(f"bias_ih_{s}", 0), p.get(f"bias_hh_{s}", 0)]
            h, c = np.zeros((B, H)), np.zeros((B, H))
            out = np.zeros((T, B, H))
            for t in (range(T - 1, -1, -1) if direction else range(T)):
                hn, cn = np_cell(model.mode, x[t], h, c, *w)
                live = (t < lengths)[:, None]
                h, c = np.where(live, hn, h), np.where(live, cn, c)
                out[t] = np.where(live, hn, 0)
            outs.append(out)
            hs.append(h)
            cs.append(c)
        x = np.concatenate(outs, -1)
    return x, np.stack(hs), np.stack(cs)


def make(kind, kw, **options):
    return getattr(nn, kind)(5, 7, **kw, **options).double()


@pytest.mark.parametrize("kind,kw", KINDS)
@pytest.mark.parametrize("layers,bi", [(1, False), (1, True), (2, False), (2, True)])
def test_forward_matches_numpy(kind, kw, layers, bi):
    r, seed = rng()
    model = make(kind, kw, num_layers=layers, bidirectional=bi)
    x = r.standard_normal((6, 3, 5))
    lengths = [6, 2, 5]
    out, state = model(em.tensor(x), lengths=lengths)
    h = state[0] if kind == "LSTM" else state
    want_out, want_h, want_c = np_rnn(model, x, lengths)
    assert_close(out.detach().numpy(), want_out, 1e-12, msg=f"seed {seed} out")
    assert_close(h.detach().numpy(), want_h, 1e-12, msg=f"seed {seed} h_n")
    if kind == "LSTM":
        assert_close(state[1].detach().numpy(), want_c, 1e-12, msg=f"seed {seed} c_n")


@pytest.mark.parametrize("mode", ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_layer_op(mode, reverse):
    """Every input of one layer op (x, h0, c0, weights, biases), with a padded row."""
    from ember.ops.rnn import recurrent_layer
    g, H = {"LSTM": 4, "GRU": 3}.get(mode, 1), 2
    shapes = [(4, 2, 3), (2, H), (2, H), (g * H, 3), (g * H, H), (g * H,), (g * H,)]
    lengths = em.tensor(np.array([4, 2]))._a

    def layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return recurrent_layer(mode, x, h0, c0 if mode == "LSTM" else None, w_ih, w_hh, b_ih, b_hh, lengths, reverse)

    gradcheck_op(layer, shapes, low=-1.0, high=1.0)


@pytest.fixture
def two_threads():
    """Two OpenMP threads whatever the machine, so the batch sizes below pick the CPU loop's split."""
    before = em.get_num_threads()
    em.set_num_threads(2)
    yield
    em.set_num_threads(before)


# 9 hidden units: the core's step-by-step loop; 32 (whole GEMM panels): the CPU's fused loop, split
# by hidden units for 5 batch rows and by batch rows for 29 (>= 4 rows per thread; cpu/rnn.cpp).
@pytest.mark.parametrize("hidden, B", [(9, 5), (32, 5), (32, 29)])
def test_matches_pytorch_with_batch_first_and_lengths(hidden, B, two_threads):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    r, _ = rng()
    lengths = ([8, 3, 1, 8, 6] * 6)[:B]
    for kind, kw in KINDS:
        for batch_first in (False, True):
            tm = getattr(torch.nn, kind)(4, hidden, num_layers=2, bidirectional=True, batch_first=batch_first,
                                         **kw).double()
            em_m = getattr(nn, kind)(4, hidden, num_layers=2, bidirectional=True, batch_first=batch_first, **kw).double()
            em_m.load_state_dict({k: em.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
            T = 8
            x = r.standard_normal((B, T, 4) if batch_first else (T, B, 4))
            tx, ex = torch.tensor(x, requires_grad=True), em.tensor(x, requires_grad=True)
            packed = pack_padded_sequence(tx, lengths, batch_first=batch_first, enforce_sorted=False)
            po, th = tm(packed)
            to, _ = pad_packed_sequence(po, batch_first=batch_first, total_length=T)
            eo, eh = em_m(ex, lengths=lengths)
            if kind == "LSTM":
                th, eh = th[0] + 2 * th[1], eh[0] + 2 * eh[1]
            w = r.standard_normal(to.shape)
            ((to * torch.tensor(w)).sum() + (th ** 2).sum()).backward()
            ((eo * em.tensor(w)).sum() + (eh ** 2).sum()).backward()
            assert_close(eo.detach().numpy(), to.detach().numpy(), 1e-12)
            assert_close(eh.detach().numpy(), th.detach().numpy(), 1e-12)
            assert_close(ex.grad.numpy(), tx.grad.numpy(), 1e-11)
            tgrads = dict(tm.named_parameters())
            for n, p in em_m.named_parameters():
                assert_close(p.grad.numpy(), tgrads[n].grad.numpy(), 1e-11, msg=f"{kind} {n}")


# 160 hidden units: the backward step's product has depth 4H = 640, past the GEMM's KC (cpu/gemm.cpp
# gemm_packed then runs columns outside), split by units (4 rows) and by rows (31).
@pytest.mark.parametrize("hidden, B", [(13, 4), (64, 4), (64, 31), (160, 4), (160, 31)])
def test_float32_close_to_float64(hidden, B, two_threads):
    r, _ = rng()
    model = nn.LSTM(6, hidden, num_layers=2)
    x, w = r.standard_normal((17, B, 6)), r.standard_normal((17, B, hidden))
    results = []
    for dtype in ("float32", "float64"):  # forward and the input gradient (the vector backward rows)
        model.float() if dtype == "float32" else model.double()
        ex = em.tensor(x, dtype=dtype, requires_grad=True)
        out, _ = model(ex)
        (out * em.tensor(w, dtype=dtype)).sum().backward()
        results.append((out.detach().numpy(), ex.grad.numpy()))
    assert_close(results[0][0], results[1][0], 2e-5)
    assert_close(results[0][1], results[1][1], 1e-4)


def test_cells_match_layers():
    r, _ = rng()
    x, h, c = r.standard_normal((3, 4)), r.standard_normal((3, 5)), r.standard_normal((3, 5))
    for cell_cls, kind in ((nn.LSTMCell, "LSTM"), (nn.GRUCell, "GRU"), (nn.RNNCell, "RNN_TANH")):
        cell = cell_cls(4, 5).double()
        w = [p.detach().numpy() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
        want_h, want_c = np_cell(kind, x, h, c, *w)
        if kind == "LSTM":
            got_h, got_c = cell(em.tensor(x), (em.tensor(h), em.tensor(c)))
            assert_close(got_c.detach().numpy(), want_c, 1e-12)
        else:
            got_h = cell(em.tensor(x), em.tensor(h))
        assert_close(got_h.detach().numpy(), want_h, 1e-12)
        single = cell(em.tensor(x[0]))
        assert (single[0] if kind == "LSTM" else single).shape == (5,)


def test_padded_steps_change_nothing():
    """Appending garbage steps past every row's length leaves outputs (at real steps) and states alone."""
    r, _ = rng()
    model = nn.GRU(3, 4, bidirectional=True).double()
    x = r.standard_normal((5, 2, 3))
    longer = np.concatenate([x, 100 * r.standard_normal((3, 2, 3))])
    a, ha = model(em.tensor(x), lengths=[5, 4])
    b, hb = model(em.tensor(longer), lengths=[5, 4])
    assert np.array_equal(a.detach().numpy(), b.detach().numpy()[:5])
    assert np.all(b.detach().numpy()[5:] == 0) and np.array_equal(ha.detach().numpy(), hb.detach().numpy())


def test_bad_input():
    lstm = nn.LSTM(4, 3, num_layers=2)
    with pytest.raises(ValueError, match=r"\[LSTM\] expects input \(T, B, 4\).*\(5, 2, 3\)"):
        lstm(em.zeros(5, 2, 3))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 2, 3\)"):
        lstm(em.zeros(5, 2, 4), (em.zeros(1, 2, 3), em.zeros(2, 2, 3)))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\].*9"):
        lstm(em.zeros(5, 2, 4), lengths=[9, 2])
    with pytest.raises(ValueError, match="one per batch row"):
        lstm(em.zeros(5, 2, 4), lengths=[3])
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(2, 2, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"\[GRUCell\] h must have shape \(2, 3\)"):
        nn.GRUCell(4, 3)(em.zeros(2, 4), em.zeros(2, 5))


def test_learns_in_fit():
    """A GRU classifier learns whether a sequence's running sum ends positive (fit, Keras style)."""
    em.manual_seed(0)
    r = np.random.default_rng(0)
    x = r.standard_normal((400, 12, 1)).astype(np.float32)
    y = (x.sum((1, 2)) > 0).astype(np.int64)

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(1, 16, batch_first=True)
            self.head = nn.Linear(16, 2)

        def forward(self, x):
            _, h = self.gru(x)
            return self.head(h[0])

    model = Classifier()
    model.compile(optimizer=em.optim.Adam(lr=0.02), loss="cross_entropy", metrics=["accuracy"])
    h = model.fit(x, y, epochs=15, batch_size=32, validation_split=0.2, verbose=0)
    assert h.history["val_accuracy"][-1] > 0.9


def test_empty_batch():
    for cls in (nn.LSTM, nn.GRU, nn.RNN):
        x = em.tensor(np.zeros((5, 0, 4), np.float32), requires_grad=True)
        out, _ = cls(4, 32)(x)
        out.sum().backward()
        assert out.shape == (5, 0, 32) and x.grad.shape == (5, 0, 4)


@pytest.mark.parametrize("mode", ["LSTM", "RNN", "GRU"])
def test_frozen_weights_leave_the_other_weight_gradient_unchanged(mode):
    """With both weights trainable, outside the GRU the two weight gradients come from one product
    (ops/rnn.py _weight_grads); freezing either takes the separate products: the same values."""
    r, _ = rng()
    model = getattr(nn, mode)(5, 7).double()
    x, w = r.standard_normal((6, 3, 5)), r.standard_normal((6, 3, 7))

    def grads():
        for p in model.parameters():
            p.grad = None
        out, _ = model(em.tensor(x))
        (out * em.tensor(w)).sum().backward()
        return {n: None if p.grad is None else p.grad.numpy() for n, p in model.named_parameters()}

    both = grads()
    for frozen in ("weight_ih_l0", "weight_hh_l0"):
        getattr(model, frozen).requires_grad = False
        one = grads()
        getattr(model, frozen).requires_grad = True
        assert one[frozen] is None
        other = "weight_hh_l0" if frozen == "weight_ih_l0" else "weight_ih_l0"
        assert_close(one[other], both[other], 1e-12, msg=f"{mode} {other} with {frozen} frozen")
