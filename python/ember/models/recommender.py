"""Recommenders from embedding layers, trained on implicit feedback (who interacted with what):

    MatrixFactorization   score(u, i) = <p_u, q_i> + b_i
    TwoTower              score(u, i) = <user_tower(u), item_tower(i, features_i)>, each tower an
                          embedding followed by a small MLP; the item tower can also read item
                          features (e.g. multi-hot genres), so items with few interactions borrow
                          from similar ones.

Both train with the Bayesian personalised ranking loss (Rendle et al. 2009) through compile/fit:
x holds (user, positive item, sampled negative item) triples, forward returns
score(u, i+) - score(u, i-), and bpr_loss = -log sigmoid of that margin. score_all ranks every
item for a set of users (ember.training.metrics.recall_at_k reads it)."""
from __future__ import annotations

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..nn import functional as F
from ..nn import init
from ..ops.creation import arange, ones_like, tensor
from ..ops.shape import cat


def bpr_loss(margin, target=None):
    """mean(-log sigmoid(margin)) = mean(softplus(-margin)); target is ignored (fit passes one)."""
    return F.binary_cross_entropy_with_logits(margin, ones_like(margin))


def _triples(x, op):
    if x.ndim != 2 or x.shape[1] not in (2, 3):
        raise ValueError(f"[{op}] expects (B, 2) (user, item) pairs or (B, 3) (user, item, negative) triples, "
                         f"got shape {x.shape}")
    return x


class _Ranker(nn.Module):
    """forward: pairs -> scores, triples -> score(u, i+) - score(u, i-)."""

    def forward(self, x):
        x = _triples(x, type(self).__name__)
        users = self.user_vectors(x[:, 0])
        pos = (users * self.item_vectors(x[:, 1])).sum(-1) + self.item_offset(x[:, 1])
        if x.shape[1] == 2:
            return pos
        return pos - (users * self.item_vectors(x[:, 2])).sum(-1) - self.item_offset(x[:, 2])

    def item_offset(self, items):
        return 0.0

    def score_all(self, users=None, batch_size=512) -> np.ndarray:
        """(len(users), items) scores of every item for each user (all users by default)."""
        was = self.training
        self.eval()
        with no_grad():
            items = arange(self.items)
            q = self.item_vectors(items)
            offset = self.item_offset(items)
            users = np.arange(self.users) if users is None else np.asarray(users, dtype=np.int64)
            out = [((self.user_vectors(tensor(users[s:s + batch_size])) @ q.transpose(0, 1)) + offset).numpy()
                   for s in range(0, len(users), batch_size)]
        self.train(was)
        return np.concatenate(out) if out else np.zeros((0, self.items), np.float32)


class MatrixFactorization(_Ranker):
    def __init__(self, users: int, items: int, dim: int = 32):
        super().__init__()
        self.users, self.items = int(users), int(items)
        self.user = nn.Embedding(users, dim)
        self.item = nn.Embedding(items, dim)
        self.item_bias = nn.Embedding(items, 1)
        for e in (self.user, self.item):
            init.normal_(e.weight, std=0.1)
        init.zeros_(self.item_bias.weight)

    def user_vectors(self, users):
        return self.user(users)

    def item_vectors(self, items):
        return self.item(items)

    def item_offset(self, items):
        return self.item_bias(items).reshape(-1)


class TwoTower(_Ranker):
    """item_features: optional (items, F) float array (a fixed input, not trained)."""

    def __init__(self, users: int, items: int, dim: int = 32, hidden: int = 64, item_features=None):
        super().__init__()
        self.users, self.items = int(users), int(items)
        self.user = nn.Embedding(users, dim)
        self.item = nn.Embedding(items, dim)
        for e in (self.user, self.item):
            init.normal_(e.weight, std=0.1)
        feats = 0 if item_features is None else np.asarray(item_features).shape[1]
        if item_features is not None:
            if len(item_features) != items:
                raise ValueError(f"[TwoTower] item_features has {len(item_features)} rows for {items} items")
            self.register_buffer("features", tensor(np.asarray(item_features, dtype=np.float32)), persistent=False)
        self.user_tower = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.item_tower = nn.Sequential(nn.Linear(dim + feats, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def user_vectors(self, users):
        return self.user_tower(self.user(users))

    def item_vectors(self, items):
        h = self.item(items)
        if "features" in self._buffers:
            h = cat([h, self.features[items]], -1)
        return self.item_tower(h)


def split_interactions(users, items, test_fraction=0.2, seed=0):
    """Per user, a random test_fraction of their interactions (at least one, when they have two or
    more) goes to the test side: returns (train_mask, test_mask) over the interactions."""
    users = np.asarray(users)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(users), dtype=bool)
    order = np.argsort(users, kind="stable")
    starts = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1]])
    for s, e in zip(starts, np.r_[starts[1:], len(users)]):
        rows = order[s:e]
        n = int(round(test_fraction * len(rows))) if len(rows) > 1 else 0
        test[rng.permutation(rows)[:max(n, 1 if len(rows) > 1 else 0)]] = True
    return ~test, test


def interaction_matrix(users, items, n_users, n_items) -> np.ndarray:
    """(n_users, n_items) bool: True where the user interacted with the item."""
    m = np.zeros((n_users, n_items), dtype=bool)
    m[np.asarray(users), np.asarray(items)] = True
    return m


def bpr_triples(users, items, seen, rng) -> np.ndarray:
    """(N, 3) int64 (user, item, negative): one negative per interaction, drawn uniformly from the
    items the user has not interacted with (`seen`: interaction_matrix of the training set)."""
    n_items = seen.shape[1]
    full = seen.all(1)[users]
    if full.any():
        raise ValueError(f"[bpr_triples] user {int(users[np.argmax(full)])} has interacted with all {n_items} items: "
                         f"there is no negative to sample")
    neg = rng.integers(0, n_items, len(users))
    clash = seen[users, neg]
    while clash.any():  # redraw the few that hit a seen item
        neg[clash] = rng.integers(0, n_items, int(clash.sum()))
        clash = seen[users, neg]
    return np.stack([users, items, neg], 1).astype(np.int64)
