"""Hyperparameter search on the digits: a grid over width and learning rate, then a random search
over width, dropout, learning rate and L2, each trial scored on a validation split with early
stopping. Prints the table of trials and the best model's test accuracy."""
import numpy as np

import ember as em
import ember.nn as nn

x, y = em.datasets.load_digits()
x = x.reshape(len(x), -1) / np.float32(16)
x_train, x_test, y_train, y_test = em.preprocessing.train_test_split(x, y, test_size=0.2, stratify=y, seed=0)


def build(units=64, dropout=0.0, lr=1e-3, l2=0.0):
    model = nn.Sequential(nn.Dense(units, activation="relu", input_shape=(64,)), nn.Dropout(dropout), nn.Dense(10))
    model.compile(optimizer=em.optim.Adam(lr=lr), loss="cross_entropy", metrics=["accuracy"], l2=l2)
    return model


stop = lambda: [em.callbacks.EarlyStopping(patience=5, restore_best_weights=True)]  # noqa: E731
grid = em.tune.grid_search(build, {"units": [32, 128], "lr": [1e-3, 1e-2]}, x_train, y_train, epochs=40,
                           monitor="val_accuracy", callbacks=stop)
print(grid)
space = {"units": [64, 128, 256], "dropout": (0.0, 0.5), "lr": em.tune.loguniform(3e-4, 3e-2),
         "l2": em.tune.loguniform(1e-6, 1e-3)}
rand = em.tune.random_search(build, space, n_trials=6, x=x_train, y=y_train, epochs=40, monitor="val_accuracy",
                             callbacks=stop, seed=1)
print(rand)
best = rand if rand.best_score >= grid.best_score else grid
print("best parameters", best.best_params, "test accuracy", best.best_model.evaluate(x_test, y_test)["accuracy"])
