"""The labels long-run samples are drawn for: none for the models of q(x), the data's class
frequencies for the class-conditional JEM (ancestral sampling y ~ p(y), x ~ q(x | y)), and the
judge's count of samples it reads as the letter they were drawn for."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import run_cli
from glyph_ebm.datasets import class_prior_labels
from glyph_ebm.judge import sample_quality
from glyph_ebm.runner import generation_labels


def test_class_prior_labels_follow_the_class_frequencies():
    labels = np.repeat([0, 1, 3], [700, 200, 100])            # class 2 has no image
    drawn = class_prior_labels(labels, 20000, num_classes=5, seed=0)
    assert drawn.shape == (20000,) and drawn.dtype == np.int64
    share = np.bincount(drawn, minlength=5) / len(drawn)
    # binomial standard error at n = 20000 is <= 0.0036: 4 of them
    np.testing.assert_allclose(share, [0.7, 0.2, 0.0, 0.1, 0.0], atol=0.015)
    assert np.array_equal(drawn, class_prior_labels(labels, 20000, num_classes=5, seed=0))
    assert not np.array_equal(drawn, class_prior_labels(labels, 20000, num_classes=5, seed=1))
    with pytest.raises(ValueError, match="at least one label"):
        class_prior_labels(np.zeros(0, np.int64), 3)


def test_only_the_class_conditional_jem_draws_with_labels():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    for mode in ("ebm", "jem"):
        assert generation_labels(mode, labels, 4, 8, seed=0) is None
    y = generation_labels("jem_cond", labels, 4, 8, seed=0)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.long and y.shape == (8,)
    assert torch.equal(y, torch.from_numpy(class_prior_labels(labels, 8, num_classes=4, seed=0)))


class PixelJudge(nn.Module):
    """Reads the class of an image from which of its first C pixels is bright."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x):
        return 50.0 * x.flatten(1)[:, :self.num_classes]


def test_label_agreement_counts_the_samples_read_as_their_label():
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    x = -torch.ones(6, 1, 56, 56)
    x.view(6, -1)[torch.arange(6), y] = 1.0                  # sample i looks like class y[i]
    judge = PixelJudge()
    assert "label_agreement" not in sample_quality(judge, x)
    assert sample_quality(judge, x, y)["label_agreement"] == 1.0
    wrong = y.clone()
    wrong[:3] = (wrong[:3] + 1) % 4
    assert sample_quality(judge, x, wrong)["label_agreement"] == 0.5


def test_a_class_conditional_run_judges_labelled_samples(tmp_path):
    out = tmp_path / "cond"
    r = run_cli(["--profile", "smoke", "--no-progress", "--mode", "jem_cond", "--out", out])
    assert r.returncode == 0, r.stderr[-3000:]
    samples = json.loads((out / "metrics.json").read_text())["samples"]
    assert samples["conditional"] is True and 0.0 <= samples["label_agreement"] <= 1.0, samples
    assert "read as their label" in r.stdout, r.stdout[-2000:]
