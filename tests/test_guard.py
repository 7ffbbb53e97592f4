"""Divergence guard: a NaN loss or exploding energy rolls back instead of leaving a NaN model."""
import math
from types import SimpleNamespace

import torch

from ex3_main import JEM
from glyph_ebm.config import TrainConfig
from glyph_ebm.training import DivergenceGuard


def _setup():
    torch.manual_seed(0)
    jem = JEM(TrainConfig(hidden=4, sample_size=2, buffer_size=8), num_classes=3, img_shape=(1, 8, 8))
    opt = torch.optim.Adam(jem.parameters(), lr=1e-2)
    trainer = SimpleNamespace(optimizers=[opt], callback_metrics={}, global_step=1, should_stop=False)
    guard = DivergenceGuard(energy_limit=100.0, snapshot_every=1)
    jem.log = lambda *a, **k: None
    guard.on_train_start(trainer, jem)
    return jem, opt, trainer, guard


def test_nan_loss_rolls_back_and_shrinks_steps():
    jem, opt, trainer, guard = _setup()
    good = {k: v.clone() for k, v in jem.state_dict().items()}
    with torch.no_grad():
        for p in jem.parameters():
            p.fill_(math.nan)
    jem.sampler.buffer = torch.full((4, 1, 8, 8), math.nan)
    step0 = jem.step_size
    guard.on_train_batch_end(trainer, jem, {"loss": torch.tensor(math.nan)}, None, 0)
    for k, v in jem.state_dict().items():
        assert torch.equal(v, good[k]), f"{k} was not restored"
    assert jem.step_size == step0 * 0.5
    assert opt.param_groups[0]["lr"] == 0.5e-2
    assert torch.isfinite(jem.sampler.buffer).all()
    assert guard.rollbacks == 1


def test_exploding_energy_counts_as_divergence():
    jem, opt, trainer, guard = _setup()
    trainer.callback_metrics = {"train/e_fake": torch.tensor(-5e3)}
    assert "e_fake" in guard.diverged(trainer, jem, {"loss": torch.tensor(1.0)})
    trainer.callback_metrics = {"train/e_fake": torch.tensor(-5.0)}
    assert guard.diverged(trainer, jem, {"loss": torch.tensor(1.0)}) is None


def test_gives_up_after_max_rollbacks():
    jem, opt, trainer, guard = _setup()
    guard.max_rollbacks = 2
    for _ in range(3):
        guard.on_train_batch_end(trainer, jem, {"loss": torch.tensor(math.inf)}, None, 0)
    assert trainer.should_stop
