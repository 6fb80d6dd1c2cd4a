"""ember.nn: Module and the layers, activations, losses and initialisers built on it."""
from . import functional, init, utils  # noqa: F401
from .activation import GELU, Identity, ReLU, SiLU, Sigmoid, Softmax, Tanh  # noqa: F401
from .conv import Conv1d, Conv2d  # noqa: F401
from .containers import ModuleDict, ModuleList, Sequential  # noqa: F401
from .layers import Dense, Dropout, Embedding, Flatten, Linear  # noqa: F401
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss  # noqa: F401
from .module import Module, Parameter  # noqa: F401
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm  # noqa: F401
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: F401
from .transformer import MultiheadAttention, TransformerDecoderLayer, TransformerEncoderLayer  # noqa: F401
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: F401

