"""Why does the digits CNN say what it says? Trains em.models.DigitsCNN on the shipped digits, then
explains one test image of each digit four ways with ember.explain: saliency |d logit / d x|,
gradient x input, integrated gradients from a blank image (checking completeness: each image's
attributions add up to logit(x) - logit(blank)) and SmoothGrad. With --plot DIR it saves the maps.

    python examples/explain_digits.py --plot docs/images
"""
import argparse
import os

import numpy as np

import ember as em
import ember.nn as nn
from ember import explain


def train_cnn(seed=0):
    em.manual_seed(seed)
    x, y = em.datasets.load_digits()
    x = x / np.float32(16)
    x_train, x_test, y_train, y_test = em.preprocessing.train_test_split(x, y, test_size=0.2, stratify=y, seed=0)
    model = em.models.DigitsCNN()
    model.compile(optimizer=em.optim.Adam(lr=2e-3), loss=nn.CrossEntropyLoss(label_smoothing=0.05),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=12, batch_size=64, verbose=0, seed=seed)
    return model, x_test, y_test


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot", default=None, help="folder for explain_digits.png")
    args = ap.parse_args()
    model, x_test, y_test = train_cnn()
    print("test accuracy", round(model.evaluate(x_test, y_test)["accuracy"], 4))

    picks = [int(np.flatnonzero(y_test == d)[0]) for d in range(10)]
    images, labels = x_test[picks], y_test[picks]
    sal = explain.saliency(model, images, labels)
    gxi = explain.gradient_x_input(model, images, labels)
    ig, gap = explain.integrated_gradients(model, images, labels, steps=64, return_gap=True)
    sg = explain.smoothgrad(model, images, labels, samples=32, noise=0.15, seed=0)

    with em.no_grad():
        logits = model.eval()(em.tensor(images)).numpy()
        blank = model(em.tensor(np.zeros_like(images))).numpy()
    change = logits[np.arange(10), labels] - blank[np.arange(10), labels]
    print("integrated gradients completeness: logit(x) - logit(blank) per digit", np.round(change, 3))
    print("  sum of attributions minus that change (gap)", np.round(gap, 5))
    print(f"  largest |gap| relative to the change: {np.max(np.abs(gap) / np.abs(change)):.2e}")
    # Where the evidence sits: the share of |IG| on the ink (pixels > 0.25) vs the background.
    ink = images > 0.25
    share = (np.abs(ig) * ink).reshape(10, -1).sum(1) / np.abs(ig).reshape(10, -1).sum(1)
    print("share of |integrated gradients| on the ink, per digit", np.round(share, 2))
    if args.plot:
        os.makedirs(args.plot, exist_ok=True)
        path = explain.plot_attributions(images, [sal, gxi, ig, sg], os.path.join(args.plot, "explain_digits.png"),
                                         titles=[f"{d}" for d in labels],
                                         row_names=["saliency", "grad x input", "integrated grad", "SmoothGrad"],
                                         signed=[False, True, True, True])
        print("saved", path)
