"""The Keras-style program from DESIGN.md, as a Keras user would write it (only the imports differ):
a regression MLP on random data, float64 NumPy input accepted and cast to float32."""
import numpy as np

from ember.nn import Dense, Sequential
from ember.optim import Adam

X = np.random.rand(1000, 10)
y = np.random.rand(1000, 1)
model = Sequential()
model.add(Dense(64, activation="relu", input_shape=(10,)))
model.add(Dense(32, activation="relu"))
model.add(Dense(1))
model.compile(optimizer=Adam(), loss="mse")
history = model.fit(X, y, epochs=10, batch_size=32)
print("final loss", history.history["loss"][-1])
