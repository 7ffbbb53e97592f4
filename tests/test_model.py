"""Exercise 3.2: logits and the three energy cases, checked against independent formulas."""
import math

import pytest
import torch

from ex3_model import CNNModel


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CNNModel(num_classes=7, hidden=8)


def test_logits_shape(model):
    x = torch.rand(5, 1, 56, 56) * 2 - 1
    assert model.get_logits(x).shape == (5, 7)


@pytest.mark.parametrize("size", [28, 56, 64, 37])
def test_any_input_size_works_through_adaptive_pooling(model, size):
    x = torch.rand(3, 1, size, size) * 2 - 1
    assert model.get_logits(x).shape == (3, 7)
    assert model(x).shape == (3,)


def test_unconditional_is_logsumexp_of_logits(model):
    x = torch.rand(6, 1, 56, 56) * 2 - 1
    logits = model.get_logits(x).double()
    expected = torch.log(torch.exp(logits).sum(dim=1))        # written out, not torch.logsumexp
    assert torch.allclose(model(x).double(), expected, atol=1e-5)


def test_conditional_is_the_logit_of_the_given_class(model):
    x = torch.rand(6, 1, 56, 56) * 2 - 1
    y = torch.tensor([0, 3, 6, 1, 1, 5])
    logits = model.get_logits(x)
    expected = torch.stack([logits[i, y[i]] for i in range(6)])
    assert torch.allclose(model(x, y), expected, atol=1e-6)


def test_forward_is_negative_energy_and_upper_bounds_every_class(model):
    """f(x) = logsumexp >= max logit: the unconditional f is never below a conditional f."""
    x = torch.rand(4, 1, 56, 56) * 2 - 1
    f = model(x)
    for c in range(7):
        assert torch.all(f >= model(x, torch.full((4,), c)) - 1e-6)
    # and it exceeds the max logit by at most log C
    assert torch.all(f - model.get_logits(x).max(1).values <= math.log(7) + 1e-5)


def test_no_batchnorm_so_samples_in_a_batch_are_independent(model):
    x = torch.rand(4, 1, 56, 56) * 2 - 1
    alone = model(x[:1])
    together = model(x)[:1]
    assert torch.allclose(alone, together, atol=1e-6)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
