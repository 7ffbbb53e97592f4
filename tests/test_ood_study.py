"""The OOD study (glyph-course ood): every score against a closed-form case, the metrics against
scikit-learn, the real-letter share, and a small end-to-end run on the shipped model."""
import io
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from glyph_course import metrics, ood_study
from glyph_course.paths import PRETRAINED
from glyph_ebm.checks.toys import QuadraticEnergy, constant_images


def test_energy_confidence_and_gradient_norm_of_a_gaussian_energy():
    """E_k(x) = p/2 ||x - c_k||^2: f = -E_0, so ||grad f|| = p ||x - c_0||; logits -E_k."""
    centres = constant_images([0.0, 0.5], (1, 4, 4))
    model = QuadraticEnergy(centres, precision=3.0)
    x = torch.rand(7, 1, 4, 4) * 2 - 1
    got = ood_study.model_scores(model, x, batch_size=3)
    energy = 1.5 * (x - centres[0]).pow(2).flatten(1).sum(1)
    assert np.allclose(got["energy"], energy.numpy(), atol=1e-5)
    assert np.allclose(got["grad_norm"], 3.0 * (x - centres[0]).flatten(1).norm(dim=1).numpy(), atol=1e-5)
    logits = -1.5 * (x[:, None] - centres[None]).pow(2).flatten(2).sum(2)
    assert np.allclose(got["max_logit"], -logits.max(1).values.numpy(), atol=1e-5)
    assert np.allclose(got["max_softmax"], -logits.softmax(1).max(1).values.numpy(), atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_png_bits_are_the_bits_of_the_png_file():
    blank = np.full((3, 16, 16), 200, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise[1], mode="L").save(buffer, format="PNG", optimize=True, compress_level=9)
    assert ood_study.png_bits(noise)[1] == 8 * len(buffer.getvalue())
    assert ood_study.png_bits(blank).max() < ood_study.png_bits(noise).min()


def test_complexity_correction_units():
    """If the energy (nats) of the in-distribution images is exactly a L + b with L in bits, the
    fitted factor is a nats per bit and the corrected score is b for every image."""
    bits = np.array([800.0, 1200.0, 1500.0, 2300.0, 4000.0])
    energy = 0.004 * bits - 3.0
    slope = ood_study.nats_per_bit(energy, bits)
    assert slope == pytest.approx(0.004)
    assert np.allclose(ood_study.complexity_score(energy, bits, slope), -3.0)
    # one bit more complexity at the same energy lowers the score by the factor
    assert ood_study.complexity_score([1.0], [101.0], slope)[0] == pytest.approx(1.0 - 0.404)
    with pytest.raises(Exception, match="different complexity"):
        ood_study.nats_per_bit([1.0, 2.0], [5.0, 5.0])


def test_mahalanobis_distance_to_the_nearest_class_mean():
    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]], dtype=torch.float64)
    labels = torch.arange(2).repeat_interleave(20000)
    features = means[labels] + torch.randn(len(labels), 3, generator=g, dtype=torch.float64) * 0.5
    gauss = ood_study.Mahalanobis(features, labels)
    points = torch.tensor([[0.0, 1.0, 0.0], [3.0, 0.0, 0.5], [2.0, 0.0, 0.0]], dtype=torch.float64)
    expected = [1.0 / 0.25, (1.0 + 0.25) / 0.25, 4.0 / 0.25]        # squared distance / variance
    assert np.allclose(gauss.score(points), expected, rtol=0.03)


def test_nearest_neighbour_distance_of_normalised_features():
    """Training features along the four axes (any length): a query on the diagonal is
    2 sin(pi/8) from the two nearest and 2 cos(pi/8) from the other two, whatever its length."""
    bank = torch.tensor([[3.0, 0.0], [0.0, 0.5], [-2.0, 0.0], [0.0, -7.0]], dtype=torch.float64)
    queries = torch.tensor([[1.0, 1.0], [5.0, 5.0], [0.0, 2.0]], dtype=torch.float64)
    near, far = 2 * math.sin(math.pi / 8), 2 * math.cos(math.pi / 8)
    assert np.allclose(ood_study.NearestNeighbours(bank, k=1).score(queries, batch_size=2), [near, near, 0.0])
    assert np.allclose(ood_study.NearestNeighbours(bank, k=3).score(queries), [far, far, 2 ** 0.5])
    with pytest.raises(Exception, match="k must lie"):
        ood_study.NearestNeighbours(bank, k=5)
    # k keeps 1 % of a class: 50 for CIFAR-10's 50,000 images, 3 for the glyphs' 11,319 of 42 classes
    assert ood_study.knn_k(50_000, 10) == 50 and ood_study.knn_k(11_319, 42) == 3 and ood_study.knn_k(30, 42) == 1


def test_penultimate_features_are_the_input_of_the_last_linear_layer():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.SiLU())
            self.out = nn.Linear(5, 3)

        def get_logits(self, x):
            return self.out(self.body(x))

    net, x = Net(), torch.rand(4, 1, 4, 4)
    assert torch.allclose(ood_study.penultimate_features(net, x), net.body(x).double())


def test_layer_features_are_the_scaled_channel_statistics_of_the_last_maps_and_the_head():
    """A net whose maps are known in closed form: 1x1 convolutions make channels x and 2x of the
    image, then 3x; an image whose pixels are half a, half b has channel means (a + b) / 2 times
    the factor and standard deviations |a - b| / 2 times it. The head's activation is 2-d, not a
    map, and is left out."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.ReLU(),
                                          nn.Conv2d(2, 1, 1, bias=False), nn.ReLU())
            self.features[0].weight.data = torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)
            self.features[2].weight.data = torch.tensor([1.0, 1.0]).view(1, 2, 1, 1)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.ReLU())
            self.out = nn.Linear(5, 3)

        def get_logits(self, x):
            return self.out(self.head(self.features(x)))

    net = Net()
    a, b = torch.tensor([0.2, 0.5, 0.9]), torch.tensor([0.6, 0.1, 0.9])
    x = torch.cat([a.view(3, 1, 1, 1).expand(3, 1, 2, 4), b.view(3, 1, 1, 1).expand(3, 1, 2, 4)], 2)
    m, sd = ((a + b) / 2).double()[:, None], ((a - b).abs() / 2).double()[:, None]
    unit = lambda t: t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
    head = unit(ood_study.penultimate_features(net, x))
    first, second = unit(torch.cat([m, 2 * m, sd, 2 * sd], 1)), unit(torch.cat([3 * m, 3 * sd], 1))
    got = ood_study.layer_features(net, x, batch_size=2)
    assert torch.allclose(got, torch.cat([first, second, head], 1), atol=1e-6)
    assert torch.allclose(ood_study.layer_features(net, x, maps=1), torch.cat([second, head], 1), atol=1e-6)
    assert torch.allclose(ood_study.layer_features(net, x, maps=0), head, atol=1e-6)


def test_metrics_against_sklearn_and_by_hand():
    rng = np.random.default_rng(1)
    id_scores, ood_scores = rng.normal(0, 1, 300), rng.normal(1.5, 1, 200)
    labels = np.r_[np.zeros(300), np.ones(200)]
    got = metrics.detection_metrics(id_scores, ood_scores)
    assert got["auroc"] == pytest.approx(roc_auc_score(labels, np.r_[id_scores, ood_scores]))
    assert got["aupr"] == pytest.approx(average_precision_score(labels, np.r_[id_scores, ood_scores]))
    # FPR at 95 % TPR: the threshold keeps the 95 lowest-scored of 100 ID images (score <= 95),
    # and two of the four OOD images (50, 95) fall below it
    assert metrics.fpr_at_tpr(np.arange(1.0, 101.0), np.array([50.0, 96.0, 200.0, 95.0])) == 0.5


def test_real_letter_share_needs_a_letter_partner_and_the_judges_agreement():
    classes = ["b", "p", "e", "o"]

    class Judge(nn.Module):            # says "p" for image 0, "e" for image 1, unsure for image 2, "o" for 3
        def forward(self, x):
            table = torch.tensor([[0.0, 9.0, 0.0, 0.0], [0.0, 0.0, 9.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                                  [0.0, 0.0, 0.0, 9.0]])
            return table[: len(x)]

    images = torch.zeros(4, 1, 56, 56)
    sources = ["b", "e", "b", "o"]       # flipped b = p (agreed), e has no partner, unsure, o = o (agreed)
    assert ood_study.real_letter_share(Judge(), images, sources, "flipped", classes) == pytest.approx(0.5)


@pytest.mark.slow
def test_the_study_on_the_shipped_model_writes_its_table_and_figures(tmp_path):
    from glyph_course.subject import load_subject
    from glyph_ebm.ood import OOD_SETS

    rows = ood_study.run_study(load_subject(PRETRAINED), tmp_path, n=40, progress=False)
    assert {(r["set"], r["score"]) for r in rows} == {(s, c) for s in OOD_SETS for c in ood_study.SCORES}
    assert all(0.0 <= r["auroc"] <= 1.0 and 0.0 <= r["fpr95"] <= 1.0 for r in rows)
    assert {"real_share", "ceiling"} <= set(next(r for r in rows if r["set"] == "flipped"))
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {name} |" in table for name in OOD_SETS) and "**" in table
    for name in ("results.csv", "roc.png", "hist.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert math.isclose(max(r["auroc"] for r in rows if r["set"] == "noise"), 1.0, abs_tol=0.02)


@pytest.mark.slow
def test_every_set_of_the_shipped_model_is_caught_at_095_or_its_ceiling(tmp_path):
    """Issue 17's point on the shipped model, at the study's default of 1,000 images a set: the
    best score of every set reaches AUROC 0.95, or the ceiling that real letters put on flipped
    and rotated glyphs when that is lower."""
    from glyph_course.subject import load_subject

    rows = ood_study.run_study(load_subject(PRETRAINED), tmp_path, progress=False)
    best = ood_study.best_per_set(rows)
    short = {name: (round(r["auroc"], 3), r["score"], r.get("ceiling")) for name, r in best.items()
             if r["auroc"] < min(0.95, r.get("ceiling") or 1.0)}
    assert short == {}, short
