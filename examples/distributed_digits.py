"""Data-parallel training of the digits CNN with the Keras loop: launch it as

    mpiexec -n 2 python examples/distributed_digits.py [checkpoint_dir]

Every rank trains on its half of each global batch of 64 and the averaged gradients keep all ranks'
weights identical; only rank 0 prints progress and writes the best checkpoint. Run alone
(`python examples/distributed_digits.py`) it is the same training in one process."""
import os
import sys
import tempfile
import time

import numpy as np

import ember as em
import ember.distributed as dist
import ember.nn as nn

if __name__ == "__main__":
    dist.init()
    em.manual_seed(0)  # the same split on every rank; the weights come from rank 0 anyway
    x, y = em.datasets.load_digits()
    x = x / np.float32(16)
    x_train, x_test, y_train, y_test = em.preprocessing.train_test_split(x, y, test_size=0.2, stratify=y, seed=0)
    model = em.models.DigitsCNN()
    model.compile(optimizer=em.optim.Adam(lr=2e-3), loss=nn.CrossEntropyLoss(label_smoothing=0.05),
                  metrics=["accuracy"])
    folder = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    os.makedirs(folder, exist_ok=True)
    checkpoint = em.callbacks.ModelCheckpoint(os.path.join(folder, "best.safetensors"), save_best_only=True)
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=8, batch_size=64, validation_split=0.1, verbose=2, seed=0,
              callbacks=[checkpoint], distributed=True)
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    if dist.rank() == 0:
        print(f"{dist.world_size()} processes trained in {time.perf_counter() - start:.1f} s")
        print("test accuracy", round(accuracy, 4))
