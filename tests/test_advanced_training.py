"""AdvancedConfig validation, AdvancedJEM (the exercise's JEM subclassed) with each switch, its
loss terms and logs, the EMA of the weights (Lightning's EMAWeightAveraging), its checkpoints
(buffer, augmenter, averaged weights; a resumed run continues exactly), and a tiny end-to-end
``ablate`` run."""
import csv
import functools
import json
import warnings

import pytest
import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from glyph_course.advanced import ablate
from glyph_course.advanced.config import AdvancedConfig, advanced_config
from glyph_ebm.config import QUICK_RECIPE
from glyph_course.advanced.losses import softmax_correction
from glyph_course.advanced.training import AdvancedJEM
from glyph_ebm.config import TrainConfig
from glyph_ebm.errors import CheckpointError, ConfigError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(hidden=4, batch_size=8, sample_size=4, sgld_steps=3, buffer_size=32, warmup_epochs=0.0,
            channels_last=False, accelerator="cpu", gen_steps=2)


def _data(n=24, size=16, classes=3):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, size, size, generator=g) * 2 - 1, torch.arange(n) % classes


def test_defaults_are_the_exercise_and_bad_settings_are_explained():
    assert AdvancedConfig().switches() == {}
    cfg = advanced_config("quick", kl_weight=1.0, ema_decay=0.99)
    assert cfg.switches() == {"kl_weight": 1.0, "ema_decay": 0.99} and cfg.sgld_steps == 20   # a base field
    assert AdvancedConfig.from_dict(cfg.to_dict()) == cfg
    # the chapter's baseline is the plain recipe: none of the quick recipe's additions
    assert all(getattr(advanced_config("quick"), k) == getattr(AdvancedConfig(), k) for k in QUICK_RECIPE)
    bad = [
        (dict(kl_weight=1.0, kl_steps=30), "kl_steps must be between 1 and sgld_steps"),
        (dict(entropy_weight=0.5, kl_steps=0), "kl_steps"),
        (dict(kl_weight=-1.0), "kl_weight must be >= 0"),
        (dict(ema_decay=1.0), r"ema_decay must be in \[0, 1\)"),
        (dict(sample_with_ema=True), "unknown config field"),        # removed: see test_checkpoint_round_trip
        (dict(buffer_scheme="fifo"), "unknown buffer_scheme 'fifo'"),
        (dict(chain_init="zeros"), "unknown chain_init"),
        (dict(ml_loss="hinge"), "unknown ml_loss"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(augment_every=-2), "augment_every"),
        (dict(sgld_grad_clip=-0.1), "sgld_grad_clip"),
        (dict(mode="gan"), "unknown mode"),
    ]
    for changes, message in bad:
        with pytest.raises(ConfigError, match=message):
            advanced_config("quick", **changes)
    with pytest.raises(ConfigError, match="unknown config field"):
        advanced_config("quick", kl_wieght=1.0)
    with pytest.raises(ConfigError, match="unknown profile"):
        advanced_config("huge")


def test_the_exercise_jem_is_the_one_source_of_the_shared_steps():
    """AdvancedJEM inherits the exercise's steps instead of repeating them."""
    from glyph_course.reference import reference

    jem = reference().main.JEM
    assert issubclass(AdvancedJEM, jem)
    for name in ("pyx_step", "training_step", "validation_step", "px_weight_now", "configure_optimizers"):
        assert getattr(AdvancedJEM, name) is getattr(jem, name), name
    model = AdvancedJEM(AdvancedConfig(**TINY), num_classes=3, img_shape=(1, 16, 16))
    assert model.cnn is model.net and model.sampler.model is model.net
    assert isinstance(model.net, reference().model.CNNModel)
    assert isinstance(model.sampler, reference().main.MCMCSampler)
    assert [id(p) for p in model.parameters()] == [id(p) for p in model.net.parameters()]
    assert AdvancedJEM(TrainConfig(**TINY), num_classes=3, img_shape=(1, 16, 16)).cfg == AdvancedConfig(**TINY)


@pytest.mark.parametrize("mode", ["jem", "jem_cond"])
def test_with_every_switch_off_it_trains_the_exercise_jem_bit_for_bit(mode):
    from glyph_course.reference import reference

    x, y = _data()

    def train(cls, cfg):
        torch.manual_seed(0)
        model = cls(cfg, num_classes=3, img_shape=(1, 16, 16))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        losses = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step in range(4):
                loss = model.training_step((x[8 * (step % 3):][:8], y[8 * (step % 3):][:8]), step)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.detach())
        return losses, model

    ours, advanced = train(AdvancedJEM, AdvancedConfig(**TINY, mode=mode))
    theirs, exercise = train(reference().main.JEM, TrainConfig(**TINY, mode=mode))
    assert torch.equal(torch.stack(ours), torch.stack(theirs))
    assert torch.equal(advanced.sampler.buffer, exercise.sampler.buffer)
    for (name, a), b in zip(advanced.state_dict().items(), exercise.state_dict().values()):
        assert torch.equal(a, b), name


SWITCHES = [
    {},
    {"kl_weight": 1.0, "entropy_weight": 1.0, "kl_steps": 2},
    {"multiscale": True, "spectral_norm": True, "ml_loss": "softmax", "temperature": 0.5, "kl_weight": 0.5},
    {"augment_init": True, "buffer_scheme": "reservoir", "ema_decay": 0.9},
    {"chain_init": "data", "mode": "jem_cond", "kl_weight": 1.0, "augment_init": True},
    {"chain_init": "noise", "mode": "ebm", "sgld_grad_clip": None},
]


@pytest.mark.parametrize("changes", SWITCHES, ids=lambda c: ",".join(c) or "baseline")
def test_every_switch_trains(changes):
    torch.manual_seed(0)
    cfg = advanced_config("smoke", **{**TINY, **changes})
    model = AdvancedJEM(cfg, num_classes=3, img_shape=(1, 16, 16))
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # self.log() outside a Trainer
        for step in range(3):
            loss = model.training_step((x[:8], y[:8]), step)
            assert torch.isfinite(loss)
            loss.backward()
            model.on_train_batch_end(None, None, step)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.parameters())
    assert 0 < len(model.sampler.buffer) <= cfg.buffer_size
    last = model.sampler.last
    assert not last.x.requires_grad and last.x.shape == (cfg.sample_size, 1, 16, 16)
    assert (last.x_kl is not None and last.x_kl.grad_fn is not None) == cfg.uses_kl
    assert (last.y is not None) == (cfg.mode == "jem_cond")
    samples = model.generate(5, steps=2)
    assert samples.shape == (5, 1, 16, 16) and samples.min() >= -1 and samples.max() <= 1
    assert torch.equal(samples, model.generate(5, steps=2)) and model.sampler.last is last   # seeded, no side effects


def test_px_step_adds_the_chapter_terms_to_the_exercise_loss_and_logs_each_key_once():
    torch.manual_seed(0)
    cfg = advanced_config("smoke", **{**TINY, "ml_loss": "softmax", "kl_weight": 0.5, "entropy_weight": 0.25})
    model = AdvancedJEM(cfg, num_classes=3, img_shape=(1, 16, 16))
    with torch.no_grad():
        model.net.head[-1].weight.mul_(300.0)                   # energies far apart: a visible correction
    x, y = _data()
    calls = []
    model.log_dict = lambda logs, **kw: calls.append({k: float(v.detach()) for k, v in logs.items()})
    model.px_step((x[:8], y[:8]))                                  # fills the buffer (past samples)
    calls.clear()
    total = model.px_step((x[8:16], y[8:16]))
    keys = [k for c in calls for k in c]
    assert len(keys) == len(set(keys)), keys                     # no key logged twice
    logs = {k: v for c in calls for k, v in c.items()}
    last = model.sampler.last
    with torch.no_grad():
        correction = float(softmax_correction(-model.net(last.x)))
    assert logs["train/ml_correction"] == pytest.approx(correction, rel=1e-5) and abs(correction) > 1e-3
    assert abs(logs["train/kl"]) > 1e-3
    assert logs["train/kl"] == pytest.approx(0.5 * logs["train/kl_opt"] - 0.25 * logs["train/nn_entropy"], rel=1e-5)
    expected = logs["train/px_loss"] + logs["train/ml_correction"] + logs["train/kl"]
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    assert logs["train/px_total"] == pytest.approx(expected, rel=1e-5)
    assert logs["train/px_loss"] == pytest.approx(logs["train/cdiv"] + logs["train/reg"], rel=1e-5)


def _fit(model, cfg, run_dir, callbacks=(), ckpt=None):
    from glyph_ebm.training import build_trainer

    x, y = _data()
    trainer = build_trainer(cfg, run_dir, callbacks=callbacks, enable_progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=8), ckpt_path=ckpt)
    return model


class _TrainedWeights(Callback):
    """Keeps the module's weights after every optimiser step (it runs after build_trainer's callbacks)."""

    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_after_fitting_the_weights_are_the_exponential_average_of_the_trained_ones(tmp_path):
    torch.manual_seed(0)
    decay = 0.7
    cfg = advanced_config("smoke", **TINY, epochs=2, max_steps_per_epoch=3, ema_decay=decay)
    tracker = _TrainedWeights()
    model = _fit(AdvancedJEM(cfg, num_classes=3, img_shape=(1, 16, 16)), cfg, tmp_path, callbacks=(tracker,))
    assert len(tracker.steps) == 6
    average = tracker.steps[0]                           # the first step is copied, then
    for trained in tracker.steps[1:]:                    # theta_avg <- decay theta_avg + (1 - decay) theta
        average = {k: decay * average[k] + (1 - decay) * trained[k] for k in trained}
    after = model.state_dict()
    assert after.keys() == average.keys()
    for k, v in average.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=1e-7)
    last = tracker.steps[-1]
    assert all(not torch.allclose(after[k], last[k]) for k in last)      # not the last step's weights
    assert model.net is model.sampler.model                                  # generate() samples with them


def test_checkpoint_round_trip_keeps_buffer_and_the_weight_average(tmp_path):
    torch.manual_seed(0)
    cfg = advanced_config("smoke", **TINY, epochs=2, max_steps_per_epoch=3, ema_decay=0.9, kl_weight=1.0,
                          augment_init=True, buffer_scheme="reservoir")
    model = _fit(AdvancedJEM(cfg, num_classes=3, img_shape=(1, 16, 16)), cfg, tmp_path)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert {"sampler", "sgld_step_size", "current_model_state", "averaging_state"} <= set(raw)
    assert "augment" in raw["sampler"] and "ema" not in raw
    assert raw["callbacks"]["EMAWeightAveraging"] == {"latest_update_step": 6}
    assert int(raw["averaging_state"]["n_averaged"]) == 6
    average, trained = raw["state_dict"], raw["current_model_state"]
    assert average.keys() == trained.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():                                 # the module holds the average
        assert torch.equal(average[k], v), k
    assert all(not torch.equal(average[k], trained[k]) for k in average)   # and it is not the trained weights

    loaded = AdvancedJEM.load_from_checkpoint(ckpt, map_location="cpu")
    assert loaded.cfg == cfg
    assert torch.equal(loaded.sampler.buffer, model.sampler.buffer) and len(loaded.sampler.buffer) > 0
    assert loaded.sampler.n_seen == model.sampler.n_seen == 2 * 3 * cfg.sample_size     # reservoir: all offered
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert torch.equal(loaded.sampler.start_chains(4)[0], model.sampler.start_chains(4)[0])   # generator, augmenter

    # resuming a run whose training had finished runs no training step (nor Lightning's hand-over
    # of the average at the end of training): the module still ends with the averaged weights
    again = _fit(AdvancedJEM(cfg, num_classes=3, img_shape=(1, 16, 16)), cfg, tmp_path, ckpt=str(ckpt))
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k

    # the chapter's former hand-written EMA: checkpoints with its key "ema", configs with sample_with_ema
    with pytest.raises(CheckpointError, match="older version.*own EMA"):
        AdvancedJEM(cfg, num_classes=3, img_shape=(1, 16, 16)).on_load_checkpoint({**raw, "ema": {"decay": 0.9}})
    with pytest.raises(CheckpointError, match="older version.*sample_with_ema"):
        AdvancedJEM({**cfg.to_dict(), "sample_with_ema": False}, num_classes=3, img_shape=(1, 16, 16))
    old_format = {**raw, "state_dict": {"net." + k[len("cnn."):]: v for k, v in raw["state_dict"].items()}}
    with pytest.raises(CheckpointError, match="older version"):
        AdvancedJEM(cfg, num_classes=3, img_shape=(1, 16, 16)).on_load_checkpoint(old_format)


RESUME = [
    {"ema_decay": 0.9, "kl_weight": 1.0, "entropy_weight": 0.5, "augment_init": True, "buffer_scheme": "reservoir",
     "temperature": 0.8},
    {"mode": "jem_cond", "chain_init": "data", "augment_init": True, "kl_weight": 1.0, "ema_decay": 0.9},
]


@pytest.mark.parametrize("changes", RESUME, ids=["persistent", "data"])
def test_a_resumed_run_continues_exactly(tmp_path, changes):
    """Two epochs in one go == one epoch, then resumed from its checkpoint for the second."""
    cfg = advanced_config("smoke", **TINY, epochs=2, max_steps_per_epoch=3, **changes)

    def fit(config, run_dir, ckpt=None):
        torch.manual_seed(0)
        return _fit(AdvancedJEM(config, num_classes=3, img_shape=(1, 16, 16)), config, run_dir, ckpt=ckpt)

    straight = fit(cfg, tmp_path / "straight")
    first = fit(cfg.replace(epochs=1), tmp_path / "halves")
    resumed = fit(cfg, tmp_path / "halves", ckpt=str(tmp_path / "halves" / "checkpoints" / "last.ckpt"))
    assert not torch.equal(first.sampler.buffer, straight.sampler.buffer)        # (the second epoch did something)
    for name, a in straight.state_dict().items():                                 # the averaged weights
        assert torch.equal(a, resumed.state_dict()[name]), name
    s_ckpt, r_ckpt = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
                      for run in ("straight", "halves"))
    for name, a in s_ckpt["current_model_state"].items():                         # the trained weights
        assert torch.equal(a, r_ckpt["current_model_state"][name]), name
        assert not torch.equal(a, straight.state_dict()[name]), name
    assert int(s_ckpt["averaging_state"]["n_averaged"]) == int(r_ckpt["averaging_state"]["n_averaged"]) == 6
    s, r = straight.sampler.state_dict(), resumed.sampler.state_dict()
    assert s.keys() == r.keys() and "augment" in s
    for key in s:
        a, b = (s[key]["generator"], r[key]["generator"]) if key == "augment" else (s[key], r[key])
        assert torch.equal(a, b) if torch.is_tensor(a) else a == b, key


def test_tiny_ablation_end_to_end(tmp_path, monkeypatch, capsys):
    from glyph_course import metrics

    monkeypatch.setattr(metrics, "glyph_classifier",
                        functools.partial(metrics.glyph_classifier, cache_dir=tmp_path / "cache"))
    monkeypatch.setattr(ablate, "RESTORE_N", 4)
    monkeypatch.setattr(ablate, "INPAINT", {**ablate.INPAINT, "steps": 3, "chains": 2})
    monkeypatch.setattr(ablate, "CROSS_N", 5)
    monkeypatch.setattr(ablate, "CROSS_STEPS", 3)
    out = tmp_path / "ablation"
    args = ["--small", "--steps", "3", "--only", "baseline,kl", "--gen-samples", "8", "--gen-steps", "3",
            "--ood-n", "32", "--judge-steps", "5", "--out", str(out), "--no-progress"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ablate.main(args) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["run"] for r in rows] == ["baseline", "kl"]
    assert json.loads(rows[1]["switches"]) == {"augment_init": True, "augment_every": 20, "multiscale": True,
                                               "kl_weight": 1.0}
    assert {"auroc_noise", "auroc_digits", "is", "fid", "test_accuracy", "inpaint_factor", "inpaint_factor_told",
            "cross_class_rate"} <= set(rows[0])
    assert float(rows[0]["inpaint_factor"]) > 0 and 0 <= float(rows[0]["cross_class_rate"]) <= 1
    table = (out / "table.md").read_text()
    assert "| baseline |" in table and "| kl | multiscale |" in table
    for name in ("baseline", "kl"):
        result = json.loads((out / name / "result.json").read_text())
        assert result["steps"] == 3 and 0 <= result["test_accuracy"] <= 1
        assert result["inpaint_mse_mean_fill"] / result["inpaint_mse"] == pytest.approx(result["inpaint_factor"], rel=1e-3)
        assert (out / name / "samples.png").exists() and (out / name / "checkpoints" / "last.ckpt").exists()
    assert (out / "samples_side_by_side.png").exists()

    stamp = (out / "kl" / "result.json").stat().st_mtime_ns
    assert ablate.main(args) == 0                                  # finished runs are skipped
    assert (out / "kl" / "result.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert ablate.main([*args[:2], "4", *args[3:]]) == 2          # other settings, same folder
    assert "other settings" in capsys.readouterr().err
    assert ablate.main(["--only", "nope", "--out", str(out)]) == 2
