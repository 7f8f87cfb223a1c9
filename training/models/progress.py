"""A tqdm progress bar over every step of a Keras ``fit``: one bar, one ETA for the stage.

Keras' own progress bar restarts each epoch, so it cannot say when training ends; this
bar counts the steps of all epochs (``epochs x steps_per_epoch``), shows the last loss and
the epoch, and gives the ETA of the whole fit. With early stopping on validation the run
may end sooner than the bar's total.
"""

from __future__ import annotations

import os
import sys
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
from tqdm import tqdm


class FitProgress(keras.callbacks.Callback):
    """One tqdm bar on stderr over ``epochs * steps_per_epoch`` training steps.

    Args:
        desc: The bar's label.
        epochs: Epochs of the fit.
        steps_per_epoch: Batches per epoch.
        every: Steps between bar refreshes (a refresh is cheap, but not free).
    """

    def __init__(self, desc: str, epochs: int, steps_per_epoch: int, every: int = 10) -> None:
        super().__init__()
        self.desc, self.total = desc, int(epochs) * int(steps_per_epoch)
        self.every, self._pending, self._epoch = max(1, every), 0, 0
        self.bar: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.bar = tqdm(total=self.total, desc=self.desc, unit="step", file=sys.stderr,
                        dynamic_ncols=True, mininterval=1.0)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._pending += 1
        if self._pending >= self.every and self.bar is not None:
            self.bar.update(self._pending)
            self._pending = 0
            loss = (logs or {}).get("loss")
            post: dict[str, float] = {"epoch": self._epoch}
            if loss is not None:
                post["loss"] = round(float(loss), 4)
            self.bar.set_postfix(post, refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self._pending)
            self._pending = 0
            extra = {k: round(float(v), 4) for k, v in (logs or {}).items()
                     if k.startswith("val_")}
            if extra:
                self.bar.write(f"{self.desc}: epoch {epoch + 1} " + ", ".join(
                    f"{k} {v}" for k, v in extra.items()), file=sys.stderr)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
