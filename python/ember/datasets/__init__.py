"""ember.datasets: small real data sets shipped inside the package."""
from .digits import load_digits  # noqa: F401
from .text import CharVocab, load_python_source  # noqa: F401
from .ratings import load_movielens  # noqa: F401
from .sentiment import load_movie_review_snippets  # noqa: F401
