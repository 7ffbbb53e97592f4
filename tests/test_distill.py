"""Distillation: small students, a loss that goes down, and clear errors."""
import pytest
import torch
import torch.nn.functional as F

from conftest import SOLUTIONS  # noqa: F401  (puts the reference on sys.path)
from ex3_model import CNNModel
from glyph_course import metrics
from glyph_course.compression.distill import StudentEnergy, distill, replay_buffer, student_family
from glyph_ebm.errors import CheckpointError, GlyphEBMError


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return CNNModel(num_classes=42, hidden=16).eval()      # the plain recipe's width, the smallest teacher


def test_family_reaches_well_under_a_hundredth_of_the_teacher(teacher):
    sizes = {name: metrics.parameter_count(s)[1] for name, s in student_family().items()}
    big = metrics.parameter_count(teacher)[1]
    assert min(sizes.values()) < big / 100 and len(sizes) >= 4
    assert list(sizes.values()) == sorted(sizes.values())
    x = torch.rand(3, 1, 56, 56) * 2 - 1
    assert StudentEnergy(4)(x).shape == (3,) and StudentEnergy(4)(torch.rand(2, 1, 28, 28)).shape == (2,)
    with pytest.raises(ValueError, match="unconditional"):
        StudentEnergy(4)(x, torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("source", ["train", "buffer", "both"])
def test_distillation_lowers_the_mse(teacher, source):
    torch.manual_seed(1)
    train = torch.rand(256, 1, 32, 32) * 2 - 1
    buffer = torch.rand(128, 1, 32, 32) * 0.5
    student = StudentEnergy(4)
    with torch.no_grad():
        before = F.mse_loss(student(train), teacher(train)).item()
    history = distill(student, teacher, train, buffer, source=source, steps=120, batch_size=64, log_every=20)
    with torch.no_grad():
        after = F.mse_loss(student(train), teacher(train)).item()
    assert history["mse"][-1] < history["mse"][0]
    assert after < 0.5 * before, (before, after)
    assert not student.training


def test_bad_requests(teacher, tmp_path):
    with pytest.raises(GlyphEBMError, match="source"):
        distill(StudentEnergy(2), teacher, torch.zeros(4, 1, 8, 8), source="data")
    with pytest.raises(GlyphEBMError, match="replay buffer"):
        distill(StudentEnergy(2), teacher, torch.zeros(4, 1, 8, 8), source="both")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        replay_buffer(tmp_path)


def test_replay_buffer_is_read_from_the_run_checkpoint(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    buffer = torch.rand(5, 1, 8, 8)
    torch.save({"sampler": {"buffer": buffer}}, tmp_path / "checkpoints" / "last.ckpt")
    assert torch.equal(replay_buffer(tmp_path), buffer)
    torch.save({"sampler": {"buffer": torch.zeros(0, 1, 8, 8)}}, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError, match="no replay buffer"):
        replay_buffer(tmp_path)


def test_transfer_augmentation_is_seeded_in_range_and_mixes_kinds():
    from glyph_course.compression.distill import transfer_augment

    x = torch.rand(64, 1, 28, 28) * 2 - 1
    a = transfer_augment(x, torch.Generator().manual_seed(3))
    b = transfer_augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= -1 - 1e-5 and a.max() <= 1 + 1e-5
    unchanged = (a == x).flatten(1).all(1)
    assert 0 < int(unchanged.sum()) < 64          # some kept as they are, most replaced
    assert not torch.equal(a, transfer_augment(x, torch.Generator().manual_seed(4)))


def test_augmented_distillation_runs_and_lowers_the_mse(teacher):
    torch.manual_seed(0)
    x = torch.rand(256, 1, 56, 56) * 2 - 1
    student = StudentEnergy(2)
    history = distill(student, teacher, x, source="train", steps=40, batch_size=64, augment=2, log_every=10)
    assert history["mse"][-1] < history["mse"][0]


def test_transfer_set_holds_the_images_their_copies_and_the_teachers_energies(teacher):
    from glyph_course.compression.distill import transfer_set

    x = torch.rand(16, 1, 56, 56) * 2 - 1
    images, targets = transfer_set(teacher, x, copies=2, seed=1)
    assert images.shape == (48, 1, 56, 56) and targets.shape == (48,)
    assert torch.equal(images[:16], x)                       # the originals come first
    assert not torch.equal(images[16:32], x)                 # then augmented copies
    with torch.no_grad():
        assert torch.allclose(targets, teacher(images), atol=1e-5)
    again, _ = transfer_set(teacher, x, copies=2, seed=1)
    assert torch.equal(images, again)
    with pytest.raises(GlyphEBMError, match="copies"):
        transfer_set(teacher, x, copies=-1)


def test_students_share_the_transfer_set_cache(teacher):
    x = torch.rand(32, 1, 56, 56) * 2 - 1
    cache = {}
    distill(StudentEnergy(2), teacher, x, source="train", steps=2, batch_size=8, augment=1, transfer=cache)
    assert list(cache) == ["train"] and cache["train"][0].shape == (64, 1, 56, 56)
    first = cache["train"]
    distill(StudentEnergy(2), teacher, x, source="train", steps=2, batch_size=8, augment=1, transfer=cache)
    assert cache["train"] is first                                  # found, not computed again


def test_a_custom_loss_is_what_the_student_minimises(teacher):
    train = torch.rand(64, 1, 32, 32) * 2 - 1
    seen = []

    def l1(f, t):
        seen.append((f.shape, t.shape))
        return (f - t).abs().mean()
    history = distill(StudentEnergy(2), teacher, train, source="train", steps=5, batch_size=16, loss_fn=l1,
                      log_every=1)
    assert seen == [(torch.Size([16]), torch.Size([16]))] * 5
    assert len(history["mse"]) == 5
