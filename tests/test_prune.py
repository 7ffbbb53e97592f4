"""Pruning zeroes or removes exactly the stated share and keeps the energy's meaning."""
import pytest
import torch

from conftest import SOLUTIONS  # noqa: F401  (puts the reference on sys.path)
from ex3_model import CNNModel
from glyph_course import metrics
from glyph_course.compression.prune import (PruningError, compact_size_bytes, compact_state_dict, expand_state_dict,
                                         prune_channels, prunable, prune_unstructured, sparsity)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CNNModel(num_classes=7, hidden=8).eval()


@pytest.mark.parametrize("scope", ["global", "conv"])
@pytest.mark.parametrize("amount", [0.1, 0.5, 0.9])
def test_unstructured_zeroes_the_stated_fraction_and_keeps_the_original(model, scope, amount):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = prune_unstructured(model, amount, scope)
    assert sparsity(pruned, scope) == pytest.approx(amount, abs=1e-3)
    assert sparsity(model, scope) == 0.0 and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(name.endswith("_orig") or name.endswith("_mask") for name in pruned.state_dict()), \
        "pruning must be permanent (no masks left in the state dict)"
    if scope == "conv":
        linear = [m for m in pruned.modules() if isinstance(m, torch.nn.Linear)]
        assert all((m.weight != 0).all() for m in linear), "conv scope leaves the linear layers alone"
    # global magnitude: every surviving weight is at least as large as every removed one
    kept = torch.cat([m.weight.detach().abs().flatten() for m in prunable(pruned, scope)])
    orig = torch.cat([m.weight.detach().abs().flatten() for m in prunable(model, scope)])
    assert orig[kept == 0].max() <= kept[kept > 0].min() + 1e-7


@pytest.mark.parametrize("scope", ["conv", "global"])
@pytest.mark.parametrize("norm", [1, 2])
def test_channel_pruning_removes_channels_and_keeps_shapes(model, scope, norm):
    x = torch.rand(3, 1, 56, 56) * 2 - 1
    pruned = prune_channels(model, 0.5, norm=norm, scope=scope)
    convs = [m for m in pruned.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 8, 16]
    assert pruned.head[1].in_features == 16 * 16
    assert pruned.head[1].out_features == (16 if scope == "global" else 32)
    with torch.no_grad():
        assert pruned(x).shape == (3,) and pruned.get_logits(x).shape == (3, 7)
        assert pruned(torch.rand(2, 1, 40, 40)).shape == (2,)
    share = metrics.parameter_count(pruned)[1] / metrics.parameter_count(model)[1]
    assert share < (0.3 if scope == "global" else 0.45), share
    assert metrics.model_size_bytes(pruned) < metrics.model_size_bytes(model)


def test_channel_pruning_keeps_the_function_of_the_kept_channels(model):
    """Removing channels = zeroing them (SiLU(0) = 0, so a zeroed channel feeds nothing on)."""
    x = torch.rand(4, 1, 56, 56) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(prune_channels(model, 0.0)(x), model(x), atol=1e-6)
        removed = prune_channels(model, 0.25, norm=1)
        zeroed = prune_channels(model, 0.0)
        for conv in [m for m in zeroed.features if isinstance(m, torch.nn.Conv2d)]:
            norms = conv.weight.flatten(1).abs().sum(1)
            drop = norms.argsort()[:int(round(0.25 * len(norms)))]
            conv.weight[drop] = 0
            conv.bias[drop] = 0
        assert torch.allclose(removed(x), zeroed(x), atol=1e-5)


def test_bad_requests_are_clear(model):
    with pytest.raises(PruningError, match=r"\[0, 1\)"):
        prune_unstructured(model, 1.0)
    with pytest.raises(PruningError, match="scope"):
        prune_channels(model, 0.5, scope="everything")
    with pytest.raises(PruningError, match="layout"):
        prune_channels(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), 0.5)


@pytest.mark.parametrize("amount", [0.5, 0.9])
def test_compact_file_of_an_unstructured_pruned_model_is_smaller_and_exact(model, amount):
    pruned = prune_unstructured(model, amount, "global")
    dense = metrics.model_size_bytes(pruned)
    compact = compact_size_bytes(pruned)
    weights = sum(m.weight.numel() for m in prunable(pruned))
    # bitmask (1 bit per weight) + surviving values: at least this much smaller than dense float32
    saved = 4 * amount * weights - weights / 8
    assert compact < dense - 0.9 * saved, (compact, dense)
    restored = expand_state_dict(compact_state_dict(pruned))
    assert restored.keys() == pruned.state_dict().keys()
    assert all(torch.equal(restored[k], v) for k, v in pruned.state_dict().items())
    fresh = CNNModel(num_classes=7, hidden=8)
    fresh.load_state_dict(restored)
    x = torch.rand(2, 1, 56, 56) * 2 - 1
    with torch.no_grad():
        assert torch.equal(fresh(x), pruned(x))


def test_compact_format_leaves_dense_tensors_alone(model):
    packed = compact_state_dict(model)            # nothing pruned: no tensor is worth a bitmask
    assert all(isinstance(v, torch.Tensor) for v in packed.values())
