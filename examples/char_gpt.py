"""A character-level GPT trained on real text that needs no download: the source code of part of
Python's standard library on this machine. Prints the unigram baseline (the loss of predicting
every character from its frequency alone), the validation loss as training goes, and a sample.

    python examples/char_gpt.py [--steps 600]
"""
import argparse
import math
import time

import numpy as np

import ember as em
from ember.datasets import CharVocab, load_python_source
from ember.models import GPT, GPTConfig

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=600)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--block", type=int, default=64)
args = parser.parse_args()

em.manual_seed(0)
text = load_python_source()
vocab = CharVocab(text)
data = vocab.encode(text)
split = int(0.9 * len(data))
train, val = data[:split], data[split:]
rng = np.random.default_rng(0)

# Unigram baseline: cross-entropy on the validation text of the training text's character frequencies.
freq = np.bincount(train, minlength=len(vocab)) + 1.0
unigram = float(-np.mean(np.log(freq / freq.sum())[val]))


def batch(source, n=args.batch):
    starts = rng.integers(0, len(source) - args.block - 1, size=n)
    x = np.stack([source[s:s + args.block] for s in starts])
    y = np.stack([source[s + 1:s + args.block + 1] for s in starts])
    return x, y


def val_loss(batches=8):
    model.eval()
    vrng = np.random.default_rng(1)  # the same validation windows every time
    total = 0.0
    with em.no_grad():
        for _ in range(batches):
            starts = vrng.integers(0, len(val) - args.block - 1, size=args.batch)
            x = np.stack([val[s:s + args.block] for s in starts])
            y = np.stack([val[s + 1:s + args.block + 1] for s in starts])
            total += model(x, y)[1].item()
    model.train()
    return total / batches


model = GPT(GPTConfig(vocab_size=len(vocab), block_size=args.block, n_layer=2, n_head=4, n_embd=96))
opt = em.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
sched = em.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
print(f"corpus: {len(text):,} characters of Python source, vocabulary {len(vocab)}; "
      f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
print(f"unigram baseline: {unigram:.3f} nats/char; uniform: {math.log(len(vocab)):.3f}")
print(f"step 0: val loss {val_loss():.3f}")
t0 = time.perf_counter()
for step in range(1, args.steps + 1):
    x, y = batch(train)
    _, loss = model(x, y)
    opt.zero_grad()
    loss.backward()
    em.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    if step % max(1, args.steps // 6) == 0 or step == args.steps:
        print(f"step {step}: train loss {loss.item():.3f}, val loss {val_loss():.3f} "
              f"({(time.perf_counter() - t0) / step * 1e3:.0f} ms/step)")
final = val_loss()
print(f"final val loss {final:.3f} nats/char ({final / unigram:.2f} of the unigram baseline)")
prompt = vocab.encode("def ")
sample = model.generate(prompt[None, :], 200, temperature=0.8, top_k=10)[0]
print("sample:\n" + vocab.decode(sample))
