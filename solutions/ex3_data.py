"""Exercise 3.1: the glyph data.

Two sources give the same tensors (``(N, 1, 56, 56)`` float in [-1, 1], labels ``(N,)`` long):

* the embedded default (no ``data`` path): a deterministic generator of letterpress-like glyphs
  with the shape of the real corpus (42 classes, 16,171 images, 70/15/15 split), cached on
  first use (see :mod:`glyph_ebm.glyphs`);
* a folder of real scans: ``PATH/<class>/*.png|jpg|...`` or pre-split
  ``PATH/{train,val,test}/<class>/...`` (see :mod:`glyph_ebm.imagefolder`). The number of
  classes comes from the folder.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from glyph_ebm.datasets import Splits, to_tensor


def load_splits(data: str | None = None, small: bool = False, seed: int = 0,
                progress: bool = True) -> Splits:
    """Images and labels of all three splits, from a folder of scans or the embedded set."""
    if data:
        from glyph_ebm.imagefolder import load_image_folder

        return load_image_folder(data, seed=seed, progress=progress)
    from glyph_ebm.glyphs import load_glyphs

    return load_glyphs(seed=seed, small=small, progress=progress)


class GlyphDataModule(pl.LightningDataModule):
    """Lightning data module over :func:`load_splits`.

    Attributes after :meth:`setup`: ``splits``, ``num_classes``, ``classes``, ``img_shape``.
    Training batches are shuffled with the module's own seeded generator (its state is saved in
    checkpoints, so a resumed run sees the same batches); the last incomplete batch is dropped.
    """

    def __init__(self, data: str | None = None, small: bool = False, seed: int = 0,
                 batch_size: int = 128, num_workers: int = 0, splits: Splits | None = None,
                 progress: bool = True):
        super().__init__()
        self.data, self.small, self.seed = data, small, seed
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress
        self.splits = splits
        self.generator = torch.Generator().manual_seed(seed)
        self._datasets: dict[str, TensorDataset] = {}

    def prepare_data(self) -> None:
        if self.splits is None:   # generate/cache once, before DDP ranks start reading
            self.splits = load_splits(self.data, self.small, self.seed, self.progress)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = load_splits(self.data, self.small, self.seed, progress=False)
        if not self._datasets:
            for name in ("train", "val", "test"):
                x, y = self.splits.split(name)
                self._datasets[name] = TensorDataset(to_tensor(x), torch.as_tensor(y).long())

    @property
    def num_classes(self) -> int:
        return self.splits.num_classes

    @property
    def classes(self) -> list[str]:
        return self.splits.classes

    @property
    def img_shape(self) -> tuple[int, int, int]:
        return self.splits.image_shape

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """All images and labels of one split as tensors."""
        self.setup()
        return self._datasets[split].tensors

    def train_dataloader(self):
        return DataLoader(self._datasets["train"], batch_size=self.batch_size, shuffle=True,
                          drop_last=True, num_workers=self.num_workers, generator=self.generator)

    def val_dataloader(self):
        return DataLoader(self._datasets["val"], batch_size=512, num_workers=self.num_workers)

    def test_dataloader(self):
        return DataLoader(self._datasets["test"], batch_size=512, num_workers=self.num_workers)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])
