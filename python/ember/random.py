"""Seeding. A Generator is a Philox stream: (seed, offset). Each draw of n numbers takes
ceil(n / 4) blocks from the offset, so a seed fixes every later draw, on the CPU and on CUDA alike."""
from __future__ import annotations

import os


class Generator:
    def __init__(self, device="cpu"):
        self.device = device
        self._seed = int.from_bytes(os.urandom(8), "little") >> 1
        self._offset = 0

    def manual_seed(self, seed: int):
        seed = int(seed)
        if not -(2 ** 63) <= seed < 2 ** 64:
            raise ValueError(f"[manual_seed] seed {seed} out of range")
        self._seed = seed % (2 ** 64)
        self._offset = 0
        return self

    def seed(self):
        self._seed = int.from_bytes(os.urandom(8), "little") >> 1
        self._offset = 0
        return self._seed

    def initial_seed(self):
        return self._seed

    def get_state(self):
        return (self._seed, self._offset)

    def set_state(self, state):
        self._seed, self._offset = int(state[0]), int(state[1])

    def _take(self, numel: int):
        """The (seed, offset) for a draw of numel numbers; advances the stream past it."""
        off = self._offset
        self._offset += (int(numel) + 3) // 4
        return self._seed, off


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seeds the default generator (CPU and CUDA draws share it, so the same seed gives the same
    numbers on both)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()
