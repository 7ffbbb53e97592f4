"""The chapter's sampler: the exercise's MCMCSampler extended (temperature, clamped pixels, composed
energies, augmentation jumps, buffer schemes, chain starts, the KL path's place), built lazily."""
import pickle
import subprocess

import pytest
import torch

from conftest import PYTHON, ROOT, SOLUTIONS  # noqa: F401
from ex3_model import CNNModel
from glyph_course.advanced.sampler import sampler_for
from glyph_course.reference import reference
from glyph_ebm.checks.toys import QuadraticEnergy
from glyph_ebm.errors import ConfigError, GlyphEBMError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ChapterSampler(*args, **kwargs):
    """The class is built on first use (it loads the exercise), not when the tests are collected."""
    from glyph_course.advanced.sampler import ChapterSampler as cls

    return cls(*args, **kwargs)


def _toy(centre=0.0, shape=(1, 4, 4), precision=1.0):
    return QuadraticEnergy(torch.full((1, *shape), float(centre)), precision=precision)


# -- the class ------------------------------------------------------------------------------
def test_it_is_the_exercise_sampler_built_on_first_use():
    from glyph_course.advanced import sampler, training

    cls = sampler.ChapterSampler
    assert reference.cache_info().currsize == 1             # (what the import test checks stays 0 before)
    assert issubclass(cls, reference().main.MCMCSampler)
    assert cls is sampler.sampler_class() and pickle.loads(pickle.dumps(cls)) is cls
    jem = training.AdvancedJEM
    assert issubclass(jem, reference().main.JEM) and pickle.loads(pickle.dumps(jem)) is jem
    with pytest.raises(AttributeError):
        sampler.NoSuchThing   # noqa: B018


def test_importing_the_chapter_runs_no_exercise_code():
    code = ("import glyph_course.advanced.training, glyph_course.advanced.sampler, glyph_course.advanced.ablate, "
            "glyph_course.advanced.chains, glyph_course.advanced.compose, glyph_course.advanced.restore\n"
            "from glyph_course.reference import reference\n"
            "assert reference.cache_info().currsize == 0, 'the exercise was loaded at import'\n")
    done = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_with_its_defaults_it_draws_the_exercise_s_chains_bit_for_bit():
    torch.manual_seed(0)
    model = CNNModel(num_classes=3, hidden=4)
    settings = dict(max_len=6, reinit_frac=0.3, init_std=0.5, grad_clip=0.05, seed=7)
    ours = ChapterSampler(model, (1, 16, 16), 4, **settings)
    theirs = reference().main.MCMCSampler(model, (1, 16, 16), 4, **settings)
    for _ in range(5):
        assert torch.equal(ours.sample(3, 1.0, 0.05), theirs.sample(3, 1.0, 0.05))
    assert torch.equal(ours.buffer, theirs.buffer) and ours.n_seen == theirs.n_seen > 6   # reservoir in use
    assert torch.equal(ours.generator.get_state(), theirs.generator.get_state())


# -- langevin with temperature, clamped pixels, composed energies, jumps ----------------------
def test_temperature_divides_the_drift_before_the_clip():
    x0 = torch.full((3, 1, 4, 4), 0.5)
    moves = {}
    for t in (1.0, 0.5, 2.0):
        moves[t] = sampler_for(_toy(), temperature=t).langevin(x0, 1, 0.1, 0.0) - x0
    # f = -|x|^2 / 2, grad f = -x: one step moves by -0.1 * x / T
    torch.testing.assert_close(moves[1.0], torch.full_like(x0, -0.05))
    torch.testing.assert_close(moves[0.5], 2 * moves[1.0])
    torch.testing.assert_close(moves[2.0], 0.5 * moves[1.0])
    per_call = sampler_for(_toy()).langevin(x0, 1, 0.1, 0.0, temperature=0.5) - x0
    torch.testing.assert_close(per_call, moves[0.5])
    # the clip acts on the tempered gradient: |grad / T| = 0.5 / 0.25 = 2 is clipped to 0.3
    clipped = sampler_for(_toy(), temperature=0.25, grad_clip=0.3).langevin(x0, 1, 1.0, 0.0) - x0
    torch.testing.assert_close(clipped, torch.full_like(x0, -0.3))


def test_noise_comes_from_the_sampler_s_seeded_generator():
    x0 = torch.full((2, 1, 4, 4), 0.2)
    a = sampler_for(_toy(), seed=3).langevin(x0, 3, 0.1, 0.05)
    b = sampler_for(_toy(), seed=3).langevin(x0, 3, 0.1, 0.05)
    assert torch.equal(a, b) and not torch.equal(a, sampler_for(_toy(), seed=4).langevin(x0, 3, 0.1, 0.05))


def test_only_input_gradients_and_every_mode_is_restored():
    model, other = CNNModel(num_classes=3, hidden=4), CNNModel(num_classes=3, hidden=4)
    model.train()
    other.eval()
    sampler = sampler_for(model)
    x0 = torch.rand(2, 1, 16, 16) * 2 - 1
    x, kept = sampler.langevin(x0, 4, 1.0, 0.01, y=torch.tensor([0, 2]), keep_steps=(0, 2, 4), temperature=0.5)
    assert all(p.grad is None for p in model.parameters())
    assert model.training and not x.requires_grad and sampler.model is model
    assert sorted(kept) == [0, 2, 4] and torch.equal(kept[4], x) and torch.equal(kept[0], x0)
    assert x.min() >= -1 and x.max() <= 1
    sampler.langevin(x0, 1, 1.0, 0.0, model=other)
    assert model.training and not other.training
    with pytest.raises(GlyphEBMError, match="one value"):
        sampler.langevin(x0, 1, 0.1, 0.0, energy_fn=lambda z: z.sum())
    assert sampler.model is model and model.training              # put back after an error too


def test_observed_pixels_stay_bitwise_fixed_and_do_not_steer_the_rest():
    torch.manual_seed(0)
    model = CNNModel(num_classes=3, hidden=4)
    x_obs = torch.rand(3, 1, 16, 16) * 2 - 1
    mask = torch.rand(1, 1, 16, 16) < 0.5
    full = mask.expand_as(x_obs)
    x0 = torch.rand(3, 1, 16, 16) * 2 - 1
    x, kept = sampler_for(model, seed=1).langevin(x0, 5, 50.0, 0.3, observed=(x_obs, mask), keep_steps=range(6))
    for step in kept.values():
        assert torch.equal(step[full], x_obs[full])
    assert torch.equal(x, kept[5]) and torch.equal(x[full], x_obs[full])
    assert not torch.equal(x[~full], x0[~full])                    # the rest moved
    free = sampler_for(model, seed=1).langevin(x0, 5, 50.0, 0.3)
    assert not torch.equal(free[full], x_obs[full])                 # (so the check has teeth)
    # the same chains as resetting the observed pixels after the noise and after every move
    g, by_hand = torch.Generator().manual_seed(1), torch.where(full, x_obs, x0)
    for k in range(1, 6):
        z = by_hand + 0.3 * torch.randn(by_hand.shape, generator=g)
        z = torch.where(full, x_obs, z.clamp(-1, 1)).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(z).sum(), z)
        by_hand = torch.where(full, x_obs, (z.detach() + 50.0 * grad).clamp(-1, 1))
        torch.testing.assert_close(kept[k], by_hand, rtol=0, atol=1e-6)
    # a different observed image changes the free pixels' drift
    other = sampler_for(model, seed=1).langevin(x0, 5, 50.0, 0.3, observed=(-x_obs, mask))
    assert not torch.equal(other[~full], x[~full])


def test_energy_fn_and_augmentation_jumps_with_kept_steps():
    calls = []

    def jump(x):
        calls.append(1)
        return x * 0

    x0 = torch.full((2, 1, 4, 4), 0.5)
    x, kept = sampler_for(None).langevin(x0, 10, 0.1, 0.0, energy_fn=lambda z: z.flatten(1).sum(1),
                                         augment_every=4, augment=jump, keep_steps=(0, 3, 4, 5, 8, 9, 10))
    assert len(calls) == 2                     # after steps 4 and 8, never after the last
    expected = {0: 0.5, 3: 0.8, 4: 0.0, 5: 0.1, 8: 0.0, 9: 0.1, 10: 0.2}   # +0.1 a step, reset to 0 at 4 and 8
    assert sorted(kept) == sorted(expected)
    for k, v in expected.items():
        torch.testing.assert_close(kept[k], torch.full_like(x0, v), msg=f"step {k}")
    torch.testing.assert_close(x, torch.full_like(x0, 0.2))


def test_bad_settings_give_clear_errors():
    x0 = torch.zeros(2, 1, 4, 4)
    s = sampler_for(_toy())
    with pytest.raises(GlyphEBMError, match="temperature"):
        s.langevin(x0, 1, 0.1, 0.0, temperature=0)
    with pytest.raises(GlyphEBMError, match="steps"):
        s.langevin(x0, -1, 0.1, 0.0)
    with pytest.raises(GlyphEBMError, match="augment callable"):
        s.langevin(x0, 1, 0.1, 0.0, augment_every=2)
    with pytest.raises(GlyphEBMError, match="model or an energy_fn"):
        sampler_for(None).langevin(x0, 1, 0.1, 0.0)
    with pytest.raises(GlyphEBMError, match="do not fit"):
        s.langevin(x0, 1, 0.1, 0.0, observed=(torch.zeros(2, 1, 5, 5), torch.ones(1, 1, 5, 5)))
    for bad, message in ((dict(scheme="fifo"), "unknown buffer scheme"), (dict(fresh="pink"), "fresh-chain"),
                         (dict(chain_init="zeros"), "chain initialisation"), (dict(temperature=-1.0), "temperature"),
                         (dict(grad_clip=0.0), "grad_clip")):
        with pytest.raises(ConfigError, match=message):
            sampler_for(_toy(), **bad)


# -- replay buffer schemes and fresh chains ---------------------------------------------------
def _items(ids):
    return torch.as_tensor(ids, dtype=torch.float32).view(-1, 1)


def _buffer_sampler(**kw):
    return ChapterSampler(None, (1,), 4, **kw)


def test_reservoir_keeps_a_uniform_sample_of_everything_it_saw():
    trials, counts = 1500, torch.zeros(50)
    for t in range(trials):
        s = _buffer_sampler(max_len=10, scheme="reservoir", seed=t)
        for start in range(0, 50, 5):
            s.update_buffer(_items(range(start, start + 5)), torch.zeros(5, dtype=torch.long))   # slots ignored
        counts[s.buffer.long().flatten()] += 1
        assert s.n_seen == 50
    share = counts / trials                                       # each item kept w.p. 10/50
    assert (share - 0.2).abs().max() < 0.05, share
    assert abs(float(share[:10].mean()) - 0.2) < 0.02 and abs(float(share[-10:].mean()) - 0.2) < 0.02


def test_persistent_writes_back_reservoir_adds():
    for scheme, expected_len in (("persistent", 4), ("reservoir", 8)):
        s = _buffer_sampler(max_len=100, scheme=scheme, reinit_frac=0.0, seed=0)
        s.update_buffer(_items([1, 2, 3, 4]), torch.full((4,), -1))
        s.max_len = 4                                             # "full": every chain comes from the buffer
        x0, slots = s.sample_initial(4)
        assert bool((slots >= 0).all())
        s.max_len = 100
        s.update_buffer(x0 + 100, slots)
        assert len(s.buffer) == expected_len
        if scheme == "persistent":
            assert torch.equal(s.buffer[slots].flatten(), (x0 + 100).flatten())
        else:
            assert torch.equal(s.buffer[:4].flatten(), _items([1, 2, 3, 4]).flatten())


def test_uniform_fresh_chains_replace_only_the_fresh_ones():
    img = (1, 8, 8)
    s = ChapterSampler(None, img, 4, max_len=200, reinit_frac=0.5, init_std=0.01, fresh="uniform", seed=0)
    s.buffer, s.buffer_labels = torch.full((200, *img), 0.7), torch.full((200,), -1)
    x0, slots = s.sample_initial(400)
    fresh = slots < 0
    assert 150 < int(fresh.sum()) < 250
    assert bool((x0[~fresh] == 0.7).all())
    u = x0[fresh].flatten()
    assert float(u.min()) < -0.99 and float(u.max()) > 0.99 and abs(float(u.mean())) < 0.02
    assert float(u.std()) == pytest.approx(1 / 3 ** 0.5, abs=0.01)          # U(-1, 1)
    gauss = ChapterSampler(None, img, 4, max_len=200, init_std=0.01, seed=0).sample_initial(50)[0]
    assert float(gauss.abs().max()) < 0.1                         # the exercise's N(0, init_std^2)
    assert ChapterSampler(None, img, 4, scheme="reservoir").fresh == "uniform"


def test_state_round_trip_and_scheme_check():
    from glyph_course.advanced.augment import GlyphAugment

    s = ChapterSampler(None, (1, 8, 8), 4, max_len=6, reinit_frac=0.0, seed=0, augment=GlyphAugment(seed=1))
    s.update_buffer(torch.rand(6, 1, 8, 8), torch.full((6,), -1))
    s.augment(torch.zeros(2, 1, 8, 8))
    again = ChapterSampler(None, (1, 8, 8), 4, max_len=6, reinit_frac=0.0, seed=5, augment=GlyphAugment(seed=9))
    again.load_state_dict(s.state_dict())
    assert torch.equal(again.start_chains(4)[0], s.start_chains(4)[0])    # buffer, generator and augmenter
    with pytest.raises(ConfigError, match="scheme"):
        ChapterSampler(None, (1, 8, 8), 4, scheme="reservoir").load_state_dict(s.state_dict())


# -- chain starts, past samples, the KL path ----------------------------------------------------
def test_data_starts_match_the_chain_labels():
    images = torch.arange(12, dtype=torch.float32).view(12, 1, 1, 1).expand(12, 1, 2, 2) / 12
    labels = torch.arange(12) % 3
    s = ChapterSampler(None, (1, 2, 2), 4, chain_init="data", seed=0)
    with pytest.raises(GlyphEBMError, match="need real images"):
        s.start_chains(4)
    s.data = (images, labels)
    y = torch.tensor([0, 1, 2, 2, 1, 0] * 10)
    x0, slots = s.start_chains(len(y), y)
    picked = (x0[:, 0, 0, 0] * 12).round().long()
    assert bool((slots == -1).all()) and torch.equal(picked % 3, y)
    assert len(picked.unique()) == 12                              # every image of the class can be picked
    x0, _ = s.start_chains(200)
    assert len((x0[:, 0, 0, 0] * 12).round().unique()) == 12
    with pytest.raises(GlyphEBMError, match="no image"):
        s.start_chains(2, torch.tensor([0, 5]))


def test_noise_starts_ignore_the_buffer_and_persistent_starts_are_augmented():
    img = (1, 4, 4)
    s = ChapterSampler(None, img, 4, max_len=10, reinit_frac=0.0, init_std=0.01, chain_init="noise",
                       augment=lambda z: -z, seed=0)
    s.buffer, s.buffer_labels = torch.full((10, *img), 0.5), torch.full((10,), -1)
    x0, slots = s.start_chains(20)
    assert bool((slots == -1).all()) and float(x0.abs().max()) < 0.1 and s.reinit_frac == 0.0
    s.chain_init = "persistent"
    x0, slots = s.start_chains(20)
    assert bool((slots >= 0).all()) and bool((x0 == -0.5).all())   # augmented copies of buffer chains


def test_sample_ends_with_the_kl_path_and_keeps_past_samples():
    img = (1, 2, 2)
    model = _toy(-0.5, img)
    s = ChapterSampler(model, img, 6, max_len=6, reinit_frac=0.0, init_std=0.3, seed=0, kl_steps=1,
                       entropy_samples=4)
    s.buffer, s.buffer_labels = torch.arange(6.0).view(6, 1, 1, 1).expand(6, *img) / 10, torch.full((6,), -1)
    x0 = s.start_chains(6)[0]
    s.generator.manual_seed(0)
    x = s.sample(3, 0.5, 0.0)
    # x <- x + 0.5 (c - x), c = -0.5: two steps of langevin, the last one through the KL path
    x2 = 0.25 * x0 + 0.75 * -0.5
    torch.testing.assert_close(x, 0.5 * x2 - 0.25)
    last = s.last
    assert torch.equal(last.x, x) and last.x_kl.grad_fn is not None and torch.equal(last.x_kl.detach(), x)
    (grad,) = torch.autograd.grad(last.x_kl.sum(), model.centers)
    torch.testing.assert_close(grad, torch.full_like(grad, 0.5 * 6))   # d x3 / d c = step size, 6 chains
    past = last.past[:, 0, 0, 0]
    assert len(past) == 4 and len(past.unique()) == 4 and bool(((past * 10).round() <= 5).all())
