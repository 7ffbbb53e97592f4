"""The trained model a study works on: a run folder (``checkpoints/last.ckpt``, with its replay
buffer and final SGLD step size) or a pretrained weights file (``pretrained/jem_quick.pt``), with
the data it was trained on. Shared by the compression study and the OOD study."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from glyph_ebm.errors import CheckpointError


@dataclass
class Subject:
    """The model to compress and everything known about how it was trained."""

    model: nn.Module                    # forward(x, y=None) = f(x) = -E(x); get_logits(x)
    config: dict                        # the run's TrainConfig as a dict
    splits: object                      # glyph_ebm.datasets.Splits
    buffer: torch.Tensor | None = None  # the replay buffer (N, C, H, W), None if unknown
    step_size: float | None = None      # the SGLD step size at the end of training
    source: str = ""

    def sgld(self) -> dict:
        c = self.config
        return dict(step_size=float(self.step_size or c["step_size"]), noise=float(c["noise"]),
                    init_std=float(c.get("init_std", 0.01)), grad_clip=c.get("sgld_grad_clip"))

    def generation_labels(self, n: int, seed: int = 0) -> torch.Tensor | None:
        """The labels ``(n,)`` its long-run samples are drawn for, as the run drew them: ``None``
        unless it was trained class-conditionally (``glyph_ebm.runner.generation_labels``)."""
        from glyph_ebm.runner import generation_labels

        return generation_labels(self.config.get("mode", "jem"), self.splits.train_y, len(self.splits.classes),
                                 n, seed=seed)


def _load_splits(config: dict, progress: bool = False):
    if config.get("data"):
        from glyph_ebm.imagefolder import load_image_folder

        return load_image_folder(config["data"], seed=config.get("seed", 0), progress=progress)
    from glyph_ebm.glyphs import load_glyphs

    return load_glyphs(seed=config.get("seed", 0), small=bool(config.get("small", False)), progress=progress)


def load_subject(path: str | os.PathLike, code_dir: str | os.PathLike | None = None) -> Subject:
    """The model of a run folder (``checkpoints/last.ckpt``, with its replay buffer) or of a
    pretrained weights file (``pretrained/jem_quick.pt``, no buffer), built with the
    ``CNNModel`` of ``code_dir`` (default: the reference solution)."""
    from . import pretrained
    from .reference import exercise

    path = Path(path)
    if path.is_file():
        model, info = pretrained.load(path, code_dir=code_dir)
        return Subject(model=model, config=info["config"], splits=_load_splits(info["config"]), source=str(path))
    ckpt_path = path / "checkpoints" / "last.ckpt"
    if not ckpt_path.exists():
        raise CheckpointError(f"no trained model in {path}: expected {ckpt_path} (train with `make demo` "
                              "or glyph-ebm train --out DIR) or a pretrained .pt file")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        hp = ckpt["hyper_parameters"]
        weights = {k[len("cnn."):]: v.float() for k, v in ckpt["state_dict"].items() if k.startswith("cnn.")}
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise CheckpointError(f"cannot read {ckpt_path} as a glyph-ebm checkpoint ({type(exc).__name__})") from None
    model = exercise(code_dir).model.CNNModel(num_classes=hp["num_classes"], hidden=hp["config"]["hidden"],
                            in_channels=hp["img_shape"][0])
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"the weights in {ckpt_path} do not fit CNNModel of {code_dir or 'solutions/'}: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    model = model.to(memory_format=torch.contiguous_format).eval()
    buffer = ckpt.get("sampler", {}).get("buffer")
    return Subject(model=model, config=hp["config"], splits=_load_splits(hp["config"]),
                   buffer=None if buffer is None or not len(buffer) else buffer.float().contiguous(),
                   step_size=ckpt.get("sgld_step_size"), source=str(path))


