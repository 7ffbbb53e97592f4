"""The shared evaluation kit against values known in closed form."""
import numpy as np
import pytest
import torch

from glyph_course import metrics
from glyph_ebm.checks.toys import QuadraticEnergy


@pytest.fixture(scope="module")
def small_splits():
    from glyph_ebm.glyphs import load_glyphs

    return load_glyphs(small=True, progress=False)


def test_inception_score_of_uniform_and_peaked_classifiers():
    assert metrics.inception_score(torch.full((50, 7), 1 / 7)) == pytest.approx(1.0, abs=1e-9)
    peaked = torch.eye(7).repeat(10, 1)                   # each image certain, classes balanced
    assert metrics.inception_score(peaked) == pytest.approx(7.0, rel=1e-6)
    one_class = torch.zeros(70, 7)
    one_class[:, 3] = 1                                   # certain but always the same class
    assert metrics.inception_score(one_class) == pytest.approx(1.0, abs=1e-6)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 5))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    mu1, mu2 = np.zeros(3), np.array([1.0, -2.0, 0.5])
    cov1, cov2 = np.diag([1.0, 4.0, 0.25]), np.diag([9.0, 1.0, 0.25])
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(np.diag(cov1)) - np.sqrt(np.diag(cov2))) ** 2).sum()
    assert metrics.frechet_distance_from_stats(mu1, cov1, mu2, cov2) == pytest.approx(closed, rel=1e-9)
    shifted = a + np.array([3.0, 0, 0, 0, 0])             # same covariance: FID = |shift|^2
    assert metrics.frechet_distance(a, shifted) == pytest.approx(9.0, rel=1e-6)


def test_size_parameter_count_and_latency():
    model = torch.nn.Linear(10, 4)
    with torch.no_grad():
        model.weight[:, :5] = 0
    nonzero, total = metrics.parameter_count(model)
    assert (nonzero, total) == (4 * 5 + 4, 44)
    assert 44 * 4 < metrics.model_size_bytes(model) < 44 * 4 + 2000
    toy = QuadraticEnergy(torch.zeros(1, 1, 8, 8))
    lat = metrics.scoring_latency(toy, torch.rand(16, 1, 8, 8), repeats=3, warmup=1)
    assert lat["batch_size"] == 16 and lat["batch_s"] > 0 and lat["single_s"] > 0


def test_accuracy_and_auroc_on_a_known_energy():
    toy = QuadraticEnergy(torch.stack([torch.full((1, 4, 4), -0.5), torch.full((1, 4, 4), 0.5)]))
    x = torch.cat([torch.full((5, 1, 4, 4), -0.4), torch.full((5, 1, 4, 4), 0.6)])
    y = torch.tensor([0] * 5 + [1] * 5)
    assert metrics.accuracy(toy, x, y) == 1.0
    assert metrics.accuracy(toy, x, 1 - y) == 0.0
    id_x = torch.randn(100, 1, 4, 4) * 0.1 - 0.5          # near the first centre: low energy
    far = torch.randn(80, 1, 4, 4) * 0.1 + 0.8
    same = torch.randn(80, 1, 4, 4) * 0.1 - 0.5
    auroc = metrics.ood_auroc(toy, id_x, {"far": far, "same": same})
    assert auroc["far"] == 1.0 and 0.35 < auroc["same"] < 0.65


def test_glyph_classifier_is_trained_once_and_cached(tmp_path, small_splits):
    clf = metrics.glyph_classifier(small_splits, cache_dir=tmp_path, steps=150)
    files = list(tmp_path.glob("glyph-classifier-*.pt"))
    assert len(files) == 1
    again = metrics.glyph_classifier(small_splits, cache_dir=tmp_path, steps=150)
    for (name, a), b in zip(clf.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    from glyph_ebm.datasets import to_tensor

    x, y = small_splits.split("test")
    x = to_tensor(x)
    with torch.no_grad():
        acc = (clf(x).argmax(1) == torch.as_tensor(y)).float().mean().item()
    assert acc > 0.5, "150 steps on the small set must beat chance (1/42) by far"
    real = metrics.sample_quality(clf, x[:200], x[200:400])
    noise = metrics.sample_quality(clf, torch.rand(200, 1, 56, 56) * 2 - 1, x[200:400])
    assert real["fid"] < noise["fid"] and real["is"] > noise["is"]
