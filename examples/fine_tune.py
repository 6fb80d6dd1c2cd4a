"""Fine-tuning: train a network on digits 0-4, then freeze its trunk and train only a new head on
digits 5-9. The frozen trunk's weights do not move (checked at the end)."""
import numpy as np

import ember as em
import ember.nn as nn

em.manual_seed(0)
x, y = em.datasets.load_digits()
x = x.reshape(len(x), -1) / np.float32(16)
low, high = y < 5, y >= 5

trunk = nn.Sequential(nn.Dense(128, activation="relu", input_shape=(64,)), nn.Dense(64, activation="relu"))
pretrain = nn.Sequential(trunk, nn.Dense(5))
pretrain.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
pretrain.fit(x[low], y[low], epochs=20, validation_split=0.2, verbose=2)

trunk.requires_grad_(False)               # freeze: no gradients, no updates
before = {k: v.detach().numpy().copy() for k, v in trunk.state_dict().items()}
model = nn.Sequential(trunk, nn.Dense(5))  # a fresh head for the new task
model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
model.summary()
model.fit(x[high], y[high] - 5, epochs=20, validation_split=0.2, verbose=2)

unchanged = all(np.array_equal(before[k], v.detach().numpy()) for k, v in trunk.state_dict().items())
print("trunk unchanged by fine-tuning:", unchanged)
print("accuracy on digits 5-9 with the frozen trunk:", round(model.evaluate(x[high], y[high] - 5)["accuracy"], 4))
