"""Resuming a run continues it exactly: weights, optimiser, replay buffer and RNG streams."""
import torch

import ex3_main
from glyph_ebm.config import profile_config
from glyph_ebm.runner import train_and_evaluate


def _final_state(run_dir):
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    cfg = profile_config("smoke", epochs=3, max_steps_per_epoch=3)
    straight = tmp_path / "straight"
    m1 = train_and_evaluate(ex3_main, cfg, straight, progress=False)

    split = tmp_path / "split"
    train_and_evaluate(ex3_main, cfg.replace(epochs=1), split, progress=False)
    m2 = train_and_evaluate(ex3_main, cfg, split, resume_from=split / "checkpoints" / "last.ckpt",
                            progress=False)

    a, b = _final_state(straight), _final_state(split)
    assert a["global_step"] == b["global_step"] == 9
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), f"weights differ after resume: {k}"
    assert torch.equal(a["sampler"]["buffer"], b["sampler"]["buffer"]), "replay buffer differs after resume"
    assert torch.equal(a["sampler"]["generator"], b["sampler"]["generator"])
    assert m1["ood_auroc"] == m2["ood_auroc"]
    assert m1["test_accuracy"] == m2["test_accuracy"]


def test_the_checkpoint_is_written_after_every_epoch(tmp_path, monkeypatch):
    """An interrupted run keeps its last finished epoch: checkpoints/last.ckpt exists (and holds
    that epoch) at the start of every epoch after the first, not only when training ends."""
    from pytorch_lightning.callbacks import Callback

    from glyph_ebm import training

    seen = []

    class Peek(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            path = tmp_path / "run" / "checkpoints" / "last.ckpt"
            seen.append(torch.load(path, map_location="cpu", weights_only=False)["epoch"] if path.exists() else None)

    build = training.build_trainer
    monkeypatch.setattr(training, "build_trainer",
                        lambda cfg, run_dir, callbacks=(), **kw: build(cfg, run_dir, callbacks=(*callbacks, Peek()), **kw))
    train_and_evaluate(ex3_main, profile_config("smoke", epochs=3, max_steps_per_epoch=2), tmp_path / "run",
                       progress=False)
    assert seen == [None, 0, 1]
