"""A real text corpus with no download: the source of a fixed list of pure-Python modules of the
standard library on this machine (PSF licence; read from the installation, not shipped). Used for
character-level language modelling."""
from __future__ import annotations

import os
import sysconfig

STDLIB_MODULES = ("textwrap", "string", "heapq", "bisect", "fractions", "difflib", "csv", "queue", "shlex",
                  "calendar", "colorsys", "fnmatch", "glob", "statistics", "dataclasses", "argparse", "pprint",
                  "random", "functools", "contextlib", "enum", "copy", "numbers", "operator")


def load_python_source(modules=STDLIB_MODULES, max_chars=None) -> str:
    """The concatenated source files of `modules` (about 600 KB for the default list)."""
    parts, stdlib = [], sysconfig.get_paths()["stdlib"]
    for name in modules:
        path = os.path.join(stdlib, name + ".py")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"[load_python_source] no source file for the standard module {name!r} "
                                    f"(looked for {path})")
        with open(path, encoding="utf-8") as f:
            parts.append(f.read())
    text = "\n".join(parts)
    return text if max_chars is None else text[:max_chars]


class CharVocab:
    """Characters <-> ids, in sorted order of the characters seen."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text: str):
        import numpy as np
        try:
            return np.array([self.index[c] for c in text], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"[CharVocab] character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)
