"""ember.tune: grid and random hyperparameter search over compile/fit."""
from .search import SearchResult, choice, grid_search, loguniform, randint, random_search, uniform  # noqa: F401
