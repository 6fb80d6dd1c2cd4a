"""ember.models: reference models built from ember.nn."""
from .cnn import DigitsCNN  # noqa: F401
from .bert import BertConfig, BertModel, SentenceEncoder  # noqa: F401
from .gpt import GPT, GPTConfig  # noqa: F401
from .recommender import MatrixFactorization, TwoTower  # noqa: F401
from .vit import ViT, ViTConfig  # noqa: F401
