"""Hyperparameter search: every combination tried, routing of parameters, k folds, reproducibility,
the table, and errors."""
import numpy as np
import pytest

import ember as em
import ember.nn as nn


def data(n=200, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(np.int64)
    return x, y


def build(units=8, lr=0.01):
    model = nn.Sequential(nn.Dense(units, activation="relu", input_shape=(4,)), nn.Dense(2))
    model.compile(optimizer=em.optim.Adam(lr=lr), loss="cross_entropy", metrics=["accuracy"])
    return model


def test_grid_search_tries_every_combination_and_picks_the_best():
    x, y = data()
    res = em.tune.grid_search(build, {"units": [2, 16], "lr": [1e-4, 0.05], "batch_size": [32]}, x, y, epochs=5,
                              monitor="val_accuracy")
    assert len(res.trials) == 4
    assert {tuple(sorted(t["params"].items())) for t in res.trials} == {
        (("batch_size", 32), ("lr", lr), ("units", u)) for u in (2, 16) for lr in (1e-4, 0.05)}
    best = max(res.trials, key=lambda t: t["score"])
    assert res.best_params == best["params"] and res.best_score == best["score"]
    assert sorted(t["rank"] for t in res.trials) == [1, 2, 3, 4]
    assert res.best_params["lr"] == 0.05  # lr 1e-4 barely moves in 5 epochs
    acc = np.mean(res.best_model.predict(x).argmax(1) == y)
    assert acc > 0.8
    table = res.table()
    assert table.splitlines()[0].split() == ["rank", "units", "lr", "batch_size", "val_accuracy", "epochs", "seconds"]
    assert len(table.splitlines()) == 6


def test_random_search_is_reproducible_and_samples_the_space():
    x, y = data()
    space = {"units": [4, 8, 16], "lr": em.tune.loguniform(1e-3, 1e-1), "epochs": (2, 4)}
    a = em.tune.random_search(build, space, 4, x, y, seed=3)
    b = em.tune.random_search(build, space, 4, x, y, seed=3)
    assert [t["params"] for t in a.trials] == [t["params"] for t in b.trials]
    assert [t["score"] for t in a.trials] == [t["score"] for t in b.trials]
    for t in a.trials:
        assert t["params"]["units"] in (4, 8, 16) and 1e-3 <= t["params"]["lr"] <= 1e-1
        assert 2 <= t["params"]["epochs"] <= 4 and t["epochs"] == t["params"]["epochs"]


def test_k_fold_scores_average_the_folds():
    x, y = data(n=90)
    res = em.tune.grid_search(build, {"units": [8]}, x, y, epochs=2, cv=3)
    assert len(res.trials) == 1 and np.isfinite(res.best_score)
    assert res.best_model is not None


def test_search_errors():
    x, y = data(n=40)
    with pytest.raises(ValueError, match="'dropout' is neither an argument of build"):
        em.tune.grid_search(build, {"dropout": [0.1]}, x, y)
    with pytest.raises(ValueError, match="held-out data"):
        em.tune.grid_search(build, {"units": [2]}, x, y, validation_split=0.0)
    with pytest.raises(ValueError, match="non-empty list"):
        em.tune.grid_search(build, {"units": []}, x, y)
    with pytest.raises(TypeError, match="distribution"):
        em.tune.random_search(build, {"units": 3}, 2, x, y)
