"""History: what fit returns. history.history maps each logged name (loss, accuracy, val_loss, lr,
...) to its per-epoch values; plot() draws them."""
from __future__ import annotations

import os

from .callbacks import Callback


class History(Callback):
    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []
        self.stop_reason: str | None = None   # set when training stopped early, and why

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def plot(self, path, keys=None):
        """Writes a PNG of the curves: one panel per quantity, its validation twin beside it.
        Needs matplotlib (pip install matplotlib, or the bench/test extras)."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("[History.plot] needs matplotlib: pip install matplotlib") from e
        names = [k for k in (keys or self.history) if not k.startswith("val_") and k != "lr"]
        if not names:
            raise ValueError("[History.plot] nothing to plot: the history is empty")
        fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            ax.plot(epochs, self.history[name], label=name)
            if "val_" + name in self.history:
                ax.plot(epochs, self.history["val_" + name], label="val_" + name)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}.png"
        try:
            fig.savefig(tmp, dpi=110)
            os.replace(tmp, path)   # never a half-written PNG at path
        finally:
            plt.close(fig)
            if os.path.exists(tmp):
                os.remove(tmp)
        return path
