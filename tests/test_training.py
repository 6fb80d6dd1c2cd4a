"""The Keras-style loop: compile/fit/evaluate/predict, callbacks, multi-task, L1/L2, NaN handling and
bad input. Small synthetic problems with known answers; no timing."""
import csv
import math

import numpy as np
import pytest

import ember as em
import ember.nn as nn
from ember.optim import SGD, Adam


def blobs(n=300, classes=3, dim=5, seed=0):
    """Separable Gaussian blobs: any working classifier reaches ~100% on them."""
    r = np.random.default_rng(seed)
    centers = r.standard_normal((classes, dim)) * 4
    y = r.integers(0, classes, n)
    return (centers[y] + r.standard_normal((n, dim))).astype(np.float32), y


def classifier(dim=5, classes=3):
    return nn.Sequential(nn.Dense(16, activation="relu", input_shape=(dim,)), nn.Dense(classes))


def test_design_program_runs_as_written(capsys):
    X = np.random.rand(1000, 10)
    y = np.random.rand(1000, 1)
    model = nn.Sequential()
    model.add(nn.Dense(64, activation="relu", input_shape=(10,)))
    model.add(nn.Dense(32, activation="relu"))
    model.add(nn.Dense(1))
    model.compile(optimizer=Adam(), loss="mse")
    history = model.fit(X, y, epochs=10, batch_size=32)
    losses = history.history["loss"]
    assert len(losses) == 10 and losses[-1] < losses[0]
    assert "Epoch 10/10" in capsys.readouterr().err  # the progress bars


def test_fit_learns_and_evaluate_predict_agree():
    em.manual_seed(0)
    x, y = blobs()
    model = classifier()
    model.compile(optimizer=Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy", "top_k_accuracy"])
    h = model.fit(x, y, epochs=15, batch_size=32, validation_split=0.2, verbose=0)
    assert set(h.history) == {"loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy",
                              "lr"}
    assert h.history["val_accuracy"][-1] > 0.95
    res = model.evaluate(x, y)
    probs = model.predict(x, batch_size=7)
    assert isinstance(probs, np.ndarray) and probs.shape == (300, 3)
    assert abs(res["accuracy"] - np.mean(probs.argmax(1) == y)) < 1e-9
    lse = np.log(np.exp(probs.astype(np.float64)).sum(1))
    assert abs(res["loss"] - np.mean(lse - probs[np.arange(300), y])) < 1e-4


def test_fit_is_reproducible_under_manual_seed():
    x, y = blobs()

    def run():
        em.manual_seed(123)
        model = classifier()
        model.compile(optimizer="adam", loss="cross_entropy")
        return model.fit(x, y, epochs=3, batch_size=16, verbose=0).history["loss"], model.predict(x)

    (l1, p1), (l2, p2) = run(), run()
    assert l1 == l2 and np.array_equal(p1, p2)


def test_validation_data_and_verbose_2(capsys):
    x, y = blobs()
    model = classifier()
    model.compile(optimizer="sgd", loss="cross_entropy", metrics=["accuracy"])
    model.fit(x[:200], y[:200], epochs=2, validation_data=(x[200:], y[200:]), verbose=2)
    err = capsys.readouterr().err
    assert "Epoch 2/2" in err and "val_accuracy" in err
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().err == ""


def test_l2_penalty_is_applied_honestly():
    """One SGD step with l2 equals the plain gradient plus 2*l2*w on weights (not on biases), and the
    reported loss includes l2 * sum w^2."""
    em.manual_seed(1)
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((8, 2)).astype(np.float32)
    model = nn.Sequential(nn.Linear(3, 2))
    w0, b0 = model[0].weight.detach().numpy().copy(), model[0].bias.detach().numpy().copy()
    l1, l2, lr = 0.01, 0.05, 0.1
    model.compile(optimizer=SGD(lr=lr), loss="mse", l1=l1, l2=l2)
    h = model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    x64, y64, w, b = (a.astype(np.float64) for a in (x, y, w0, b0))
    pred = x64 @ w.T + b
    diff = 2 * (pred - y64) / pred.size
    gw = diff.T @ x64 + 2 * l2 * w + l1 * np.sign(w)
    gb = diff.sum(0)
    assert np.allclose(model[0].weight.detach().numpy(), w - lr * gw, atol=1e-6)
    assert np.allclose(model[0].bias.detach().numpy(), b - lr * gb, atol=1e-6)
    want_loss = ((pred - y64) ** 2).mean() + l1 * np.abs(w).sum() + l2 * (w ** 2).sum()
    assert abs(h.history["loss"][0] - want_loss) < 1e-5


def test_multi_task_heads_losses_and_weights():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Dense(16, activation="relu", input_shape=(5,))
            self.cls = nn.Dense(3)
            self.reg = nn.Dense(1)

        def forward(self, x):
            h = self.trunk(x)
            return {"cls": self.cls(h), "reg": self.reg(h)}

    em.manual_seed(2)
    x, y = blobs()
    target = x[:, :1] * 2 + 1
    model = TwoHeads()
    model.compile(optimizer=Adam(lr=0.01), loss={"cls": "cross_entropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    h = model.fit(x, {"cls": y, "reg": target}, epochs=20, batch_size=32, verbose=0)
    logs = model.evaluate(x, {"cls": y, "reg": target})
    assert abs(logs["loss"] - (logs["cls_loss"] + 0.5 * logs["reg_loss"])) < 1e-4
    assert logs["cls_accuracy"] > 0.95 and h.history["reg_loss"][-1] < h.history["reg_loss"][0]
    pred = model.predict(x)
    assert set(pred) == {"cls", "reg"} and pred["reg"].shape == (300, 1)
    with pytest.raises(ValueError, match="dict of targets"):
        model.fit(x, y, verbose=0)


def test_early_stopping_restores_best_weights():
    x, y = blobs()
    model = classifier()
    model.compile(optimizer=Adam(lr=0.05), loss="cross_entropy")
    stop = em.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0, restore_best_weights=True)
    h = model.fit(x, y, epochs=20, validation_split=0.25, callbacks=[stop], verbose=0)
    # min_delta=10 means no epoch after the first counts as an improvement: stop after epoch 3.
    assert len(h.history["loss"]) == 3 and stop.best_epoch == 0
    assert "stopped by a callback" in h.stop_reason
    best = stop.best_weights
    for k, v in model.state_dict().items():
        assert np.array_equal(v.detach().numpy(), best[k].numpy())


def test_lr_scheduler_csv_logger_and_plot(tmp_path):
    x, y = blobs()
    model = classifier()
    model.compile(optimizer=SGD(lr=0.1), loss="cross_entropy", metrics=["accuracy"])
    sched = em.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    log = tmp_path / "log.csv"
    h = model.fit(x, y, epochs=3, validation_split=0.2, verbose=0,
                  callbacks=[sched, em.callbacks.CSVLogger(log)])
    assert h.history["lr"] == [0.1, 0.05, 0.025]
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[2]["val_loss"]) == pytest.approx(h.history["val_loss"][2])
    pytest.importorskip("matplotlib")
    png = h.plot(tmp_path / "curves.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_nan_loss_stops_before_the_bad_step(capsys):
    x, y = blobs(n=64)
    y_reg = np.ones((64, 1), np.float32)
    y_reg[40] = np.nan
    model = nn.Sequential(nn.Dense(1, input_shape=(5,)))
    model.compile(optimizer=SGD(lr=0.01), loss="mse")
    h = model.fit(x, y_reg, epochs=3, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[em.callbacks.TerminateOnNaN()])
    assert "loss became nan at batch 5" in h.stop_reason
    assert "[fit] epoch 1: loss became nan" in capsys.readouterr().err
    assert all(np.all(np.isfinite(p.detach().numpy())) for p in model.parameters())
    assert h.history == {}


def test_bad_input_is_reported_clearly():
    x, y = blobs(n=40)
    model = classifier()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        model.compile(optimizer="adam", loss="hinge")
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        model.compile(optimizer="adagrad", loss="mse")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(optimizer="adam", loss="mse", metrics=["f1"])
    model.compile(optimizer="adam", loss="cross_entropy")
    with pytest.raises(ValueError, match=r"x has 40 samples but y has 39"):
        model.fit(x, y[:39], verbose=0)
    with pytest.raises(TypeError, match="class indices"):
        model.fit(x, y + 0.5, verbose=0)
    with pytest.raises(ValueError, match=r"cross_entropy.*out of range"):
        model.fit(x, y + 3, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5)
    with pytest.raises(KeyError, match="val_auc"):
        model.fit(x, y, verbose=0, callbacks=[em.callbacks.EarlyStopping(monitor="val_auc")],
                  validation_split=0.2)


@pytest.mark.parametrize("make,message", [
    (lambda: em.callbacks.EarlyStopping(patience=-1), r"\[EarlyStopping\] patience must be an int >= 0"),
    (lambda: em.callbacks.EarlyStopping(patience=1.5), r"\[EarlyStopping\] patience must be an int >= 0"),
    (lambda: em.callbacks.EarlyStopping(mode="lowest"), r"mode must be 'auto', 'min' or 'max'"),
    (lambda: em.callbacks.EarlyStopping(min_delta=float("nan")), r"\[EarlyStopping\] min_delta must be a finite"),
    (lambda: em.callbacks.EarlyStopping(monitor=""), r"\[EarlyStopping\] monitor must be the name"),
    (lambda: em.callbacks.ModelCheckpoint("m.safetensors", mode="best"), r"mode must be 'auto', 'min' or 'max'"),
    (lambda: classifier().compile(loss="mse", l2=float("nan")), r"\[compile\] l1 and l2 must be finite and >= 0"),
    (lambda: classifier().compile(loss="mse", l1=-0.1), r"\[compile\] l1 and l2 must be finite and >= 0"),
], ids=["patience<0", "patience float", "mode", "min_delta nan", "monitor", "checkpoint mode", "l2 nan", "l1<0"])
def test_bad_callback_and_regularisation_arguments_fail_when_made(make, message):
    """Refused where they are given, not at the first epoch (or never, for a NaN penalty)."""
    with pytest.raises(ValueError, match=message):
        make()


def test_float_class_labels_and_column_labels_are_accepted():
    x, y = blobs(n=60)
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    a = model.evaluate(x, y.astype(np.float64))
    b = model.evaluate(x, y.reshape(-1, 1))
    assert math.isclose(a["loss"], b["loss"], rel_tol=1e-6)


def test_binary_accuracy_thresholds_logits():
    m = em.metrics.Accuracy()
    m.update(np.array([[2.0], [-1.0], [0.5]]), np.array([1.0, 0.0, 0.0]))
    assert m.result() == pytest.approx(2 / 3)
    t = em.metrics.TopKAccuracy(2)
    t.update(np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]]), np.array([2, 2]))
    assert t.result() == 0.5


def test_summary_counts():
    model = classifier()
    assert "total parameters: 96 " in model.summary(print_fn=lambda s: None)  # the lazy Dense is unbuilt
    model(em.zeros(1, 5))
    model[0].requires_grad_(False)
    text = model.summary(print_fn=lambda s: None)
    assert "total parameters: 147" in text and "frozen 96" in text
