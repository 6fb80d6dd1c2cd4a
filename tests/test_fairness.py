"""Fairness metrics on hand-computed cases: per-group rates, the demographic parity, equal
opportunity and equalized odds gaps, evaluate(groups=) and the FairnessMonitor callback."""
import math

import numpy as np
import pytest

import ember as em
import ember.nn as nn
from ember.training import metrics as M

# Group a: tp=1 fp=1 fn=1 tn=1; group b: tp=1 fp=2 fn=0 tn=1 (worked out in the comments below).
Y_TRUE = np.array([1, 1, 0, 0, 1, 0, 0, 0])
Y_PRED = np.array([1, 0, 1, 0, 1, 1, 1, 0])
GROUPS = np.array(["a"] * 4 + ["b"] * 4)
EXPECTED = {
    "a": {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "fpr": 0.5, "selection_rate": 0.5, "count": 4},
    "b": {"accuracy": 0.5, "precision": 1 / 3, "recall": 1.0, "f1": 0.5, "fpr": 2 / 3, "selection_rate": 0.75,
          "count": 4},
}


def assert_dicts_close(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12, nan_ok=True), k


def test_group_metrics_hand_computed():
    got = M.group_metrics(Y_TRUE, Y_PRED, GROUPS)
    assert list(got) == ["a", "b"]
    for g in "ab":
        assert_dicts_close(got[g], EXPECTED[g])


def test_gaps_hand_computed():
    assert M.demographic_parity_difference(Y_PRED, GROUPS) == pytest.approx(0.25)       # 0.75 - 0.5
    assert M.equal_opportunity_difference(Y_TRUE, Y_PRED, GROUPS) == pytest.approx(0.5)   # 1 - 0.5
    assert M.equalized_odds_difference(Y_TRUE, Y_PRED, GROUPS) == pytest.approx(0.5)      # max(0.5, 2/3 - 1/2)
    # Another positive class: class 0 is "positive" -> a: tp=1 fp=1 fn=1, b: tp=1 fp=0 fn=2.
    assert M.equal_opportunity_difference(Y_TRUE, Y_PRED, GROUPS, positive=0) == pytest.approx(0.5 - 1 / 3)
    # Equal treatment gives zero gaps.
    same = np.array([0, 1] * 4)
    assert M.equalized_odds_difference(same, same, np.repeat([0, 1], 4)) == 0.0


def test_undefined_rates_are_nan_and_skipped_by_the_gaps():
    # Group 1 has no positives: recall is undefined there, the gap is over the groups that have one.
    y_true, y_pred, groups = np.array([1, 0, 0, 0]), np.array([1, 0, 1, 0]), np.array([0, 0, 1, 1])
    got = M.group_metrics(y_true, y_pred, groups)
    assert math.isnan(got[1]["recall"]) and got[1]["f1"] == 0.0 and got[1]["precision"] == 0.0
    assert M.equal_opportunity_difference(y_true, y_pred, groups) == 0.0
    with pytest.raises(ValueError, match=r"\[metrics\] groups must give one group per sample \(4\)"):
        M.group_metrics(y_true, y_pred, groups[:3])


def test_predicted_labels_and_report_read_outputs_like_accuracy():
    assert np.array_equal(M.predicted_labels(np.array([-1.0, 0.5, 0.0])), [0, 1, 0])
    assert np.array_equal(M.predicted_labels(np.array([[0.1, 0.9], [2.0, -1.0]])), [1, 0])
    logits = np.where(Y_PRED == 1, 2.0, -2.0)[:, None]
    report = M.fairness_report(logits, Y_TRUE.astype(np.float32)[:, None], GROUPS)
    assert report["precision/b"] == pytest.approx(1 / 3) and report["selection_rate/a"] == 0.5
    assert report["demographic_parity_difference"] == pytest.approx(0.25)
    assert report["equalized_odds_difference"] == pytest.approx(0.5)


def fixed_binary_model():
    """Outputs its input (one logit per sample): the predictions are whatever x says."""
    m = nn.Linear(1, 1)
    m.load_state_dict({"weight": em.ones(1, 1), "bias": em.zeros(1)})
    return m


def np_bce(z, y):
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def test_evaluate_with_groups():
    x = np.where(Y_PRED == 1, 1.5, -0.5).astype(np.float32)[:, None]
    y = Y_TRUE.astype(np.float32)[:, None]
    model = fixed_binary_model()
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    logs = model.evaluate(x, y, groups=GROUPS)
    assert logs["accuracy"] == pytest.approx(0.5)
    for g in "ab":
        m = GROUPS == g
        assert logs[f"loss/{g}"] == pytest.approx(np_bce(x[m, 0].astype(np.float64), Y_TRUE[m]), rel=1e-6)
        for k in ("accuracy", "precision", "recall", "f1", "selection_rate"):
            assert logs[f"{k}/{g}"] == pytest.approx(EXPECTED[g][k]), (g, k)
    assert logs["demographic_parity_difference"] == pytest.approx(0.25)
    assert logs["equal_opportunity_difference"] == pytest.approx(0.5)
    assert "loss/a" not in model.evaluate(x, y)
    with pytest.raises(ValueError, match=r"groups must give one group per sample \(8\)"):
        model.evaluate(x, y, groups=GROUPS[:5])


def test_evaluate_with_groups_on_class_scores():
    scores = np.eye(2, dtype=np.float32)[Y_PRED] * 3.0
    model = nn.Linear(2, 2)
    model.load_state_dict({"weight": em.eye(2), "bias": em.zeros(2)})
    model.compile(loss="cross_entropy")
    logs = model.evaluate(scores, Y_TRUE, groups=GROUPS)
    assert logs["recall/b"] == 1.0 and logs["precision/b"] == pytest.approx(1 / 3)
    m = GROUPS == "a"
    z = scores[m].astype(np.float64)
    ce = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(4), Y_TRUE[m]])
    assert logs["loss/a"] == pytest.approx(ce, rel=1e-6)


def test_fairness_monitor_logs_every_epoch_into_history():
    x = np.where(Y_PRED == 1, 1.5, -0.5).astype(np.float32)[:, None]
    y = Y_TRUE.astype(np.float32)[:, None]
    model = fixed_binary_model()
    model.compile(optimizer=em.optim.SGD(model.parameters(), lr=0.0), loss="binary_crossentropy")
    stop = em.callbacks.EarlyStopping(monitor="val_equal_opportunity_difference", patience=5)
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0,
                        callbacks=[em.callbacks.FairnessMonitor(x, y, GROUPS), stop])
    h = history.history
    assert h["val_demographic_parity_difference"] == pytest.approx([0.25] * 3)
    assert h["val_recall/a"] == pytest.approx([0.5] * 3) and h["val_precision/b"] == pytest.approx([1 / 3] * 3)
    assert len(h["val_loss/b"]) == 3 and stop.best_epoch == 0
