"""The trainer's RealImageNoise callback: Gaussian noise of the configured std on the real images
of every training batch, reproducible from its seed and resumable from its state."""
import torch

from glyph_ebm.config import profile_config
from glyph_ebm.training import RealImageNoise, build_trainer


def test_noise_has_the_configured_std_and_stays_in_range():
    callback = RealImageNoise(0.05, seed=3)
    x = torch.zeros(64, 1, 16, 16)
    x[0] = 0.999                                     # near the bound: must be clamped
    batch = (x, torch.zeros(64, dtype=torch.long))
    callback.on_train_batch_start(None, None, batch, 0)
    assert abs(x[1:].std().item() - 0.05) < 0.002 and abs(x[1:].mean().item()) < 0.002
    assert x.max().item() <= 1.0


def test_same_seed_same_noise_and_state_resumes_the_stream():
    a, b = RealImageNoise(0.01, seed=1), RealImageNoise(0.01, seed=1)
    first = [torch.zeros(4, 1, 8, 8) for _ in range(3)]
    for x in first:
        a.on_train_batch_start(None, None, (x, None), 0)
    b.on_train_batch_start(None, None, (torch.zeros(4, 1, 8, 8), None), 0)
    resumed = RealImageNoise(0.01, seed=99)
    resumed.load_state_dict(b.state_dict())
    second, third = torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8)
    resumed.on_train_batch_start(None, None, (second, None), 0)
    resumed.on_train_batch_start(None, None, (third, None), 0)
    assert torch.equal(second, first[1]) and torch.equal(third, first[2])


def test_the_trainer_adds_it_only_when_asked(tmp_path):
    kinds = lambda cfg: [type(c).__name__ for c in build_trainer(cfg, tmp_path, enable_progress_bar=False).callbacks]
    assert "RealImageNoise" not in kinds(profile_config("quick"))
    assert "RealImageNoise" in kinds(profile_config("full"))
    assert profile_config("full").real_noise == 0.005
