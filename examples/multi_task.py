"""Multi-task learning: one shared trunk, two heads trained together on the digits. The model
returns a dict of heads; compile takes a loss per head, loss weights and per-head metrics."""
import numpy as np

import ember as em
import ember.nn as nn


class DigitAndParity(nn.Module):
    """Which digit (10 classes) and whether it is even (one logit), from one 128-unit trunk."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Flatten(), nn.Dense(128, activation="relu", input_shape=(64,)),
                                   nn.Dropout(0.2))
        self.digit = nn.Dense(10)
        self.even = nn.Dense(1)

    def forward(self, x):
        h = self.trunk(x)
        return {"digit": self.digit(h), "even": self.even(h)}


em.manual_seed(0)
x, y = em.datasets.load_digits()
x = x / np.float32(16)
x_train, x_test, y_train, y_test = em.preprocessing.train_test_split(x, y, test_size=0.2, stratify=y, seed=0)
targets = lambda labels: {"digit": labels, "even": (labels % 2 == 0).astype(np.float32).reshape(-1, 1)}  # noqa: E731

model = DigitAndParity()
model.compile(optimizer="adam", loss={"digit": "cross_entropy", "even": "binary_crossentropy"},
              loss_weights={"digit": 1.0, "even": 0.5}, metrics={"digit": ["accuracy"], "even": ["accuracy"]})
model.fit(x_train, targets(y_train), epochs=30, batch_size=32, validation_split=0.1, verbose=2)
print({k: round(v, 4) for k, v in model.evaluate(x_test, targets(y_test)).items()})
