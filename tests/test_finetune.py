"""Fine-tuning a pruned model keeps its zeros and lowers the loss."""
import torch

from conftest import SOLUTIONS  # noqa: F401  (puts the reference on sys.path)
from ex3_main import MCMCSampler
from ex3_model import CNNModel
from glyph_course.compression.finetune import finetune
from glyph_course.compression.prune import prune_unstructured, sparsity


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 16, 16, generator=g) * 2 - 1
    y = (x.mean((1, 2, 3)) > 0).long()            # a learnable two-class rule
    return x, y


def test_pruned_weights_stay_zero_and_the_loss_goes_down():
    torch.manual_seed(0)
    x, y = _data()
    pruned = prune_unstructured(CNNModel(num_classes=2, hidden=4), 0.5)
    zeros = {n: (p == 0) for n, p in pruned.named_parameters() if p.dim() > 1}
    history = finetune(pruned, x, y, steps=60, lr=3e-3, batch_size=32)
    assert history["loss"][-1] < history["loss"][0]
    assert abs(sparsity(pruned) - 0.5) < 1e-3
    for name, p in pruned.named_parameters():
        if name in zeros:
            assert (p[zeros[name]] == 0).all(), name
    assert not pruned.training


def test_with_a_sampler_the_generative_term_is_used():
    torch.manual_seed(0)
    x, y = _data()
    model = CNNModel(num_classes=2, hidden=4)
    calls = []

    def sample(m):
        calls.append(1)
        return MCMCSampler(m, (1, 16, 16), 16, max_len=64, reinit_frac=1.0, init_std=0.5).sample(2, 1.0, 0.01)

    finetune(model, x, y, steps=5, sampler=sample, keep_zeros=False)
    assert len(calls) == 5
    assert all(p.grad is None or p.requires_grad for p in model.parameters())


def test_energy_anchor_pulls_the_energies_back_to_the_teacher():
    torch.manual_seed(0)
    x, y = _data()
    teacher = CNNModel(num_classes=2, hidden=4).eval()
    extra = torch.rand(32, 1, 16, 16) * 2 - 1

    def gap(model):
        with torch.no_grad():
            probe = torch.cat([x, extra])
            return float((model(probe) - teacher(probe)).pow(2).mean())

    results = {}
    for weight in (0.0, 5.0):
        model = prune_unstructured(teacher, 0.7)
        finetune(model, x, y, steps=60, lr=3e-3, batch_size=32, teacher=teacher, anchor_weight=weight,
                 anchor_images=extra)
        results[weight] = gap(model)
        assert abs(sparsity(model) - 0.7) < 1e-3          # the anchor does not undo the pruning
    assert results[5.0] < 0.5 * results[0.0]
