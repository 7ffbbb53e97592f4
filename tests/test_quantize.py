"""int8 post-training quantization of an energy model for scoring."""
import pytest
import torch
from scipy.stats import spearmanr

from glyph_course import metrics, pretrained
from glyph_course.compression.quantize import ScoreOnly, quantize_dynamic, quantize_static
from glyph_ebm.datasets import to_tensor


@pytest.fixture(scope="module")
def setup():
    from glyph_ebm.glyphs import load_glyphs

    splits = load_glyphs(small=True, progress=False)
    model, _ = pretrained.load()
    return model, to_tensor(splits.split("train")[0][:512]), to_tensor(splits.split("test")[0])


def test_static_int8_scores_rank_like_the_float_model_and_the_file_shrinks(setup):
    model, calibration, test = setup
    q = quantize_static(model, calibration)
    with torch.no_grad():
        f, fq = model(test), q(test)
    assert fq.shape == f.shape
    assert spearmanr(f.numpy(), fq.numpy())[0] >= 0.95
    assert metrics.model_size_bytes(model) / metrics.model_size_bytes(q) >= 3.5
    assert all(p.dtype == torch.float32 for p in model.parameters()), "the float model is left untouched"


def test_dynamic_int8_is_a_smaller_comparison(setup):
    model, _, test = setup
    d = quantize_dynamic(model)
    with torch.no_grad():
        assert spearmanr(model(test).numpy(), d(test).numpy())[0] >= 0.95
    assert metrics.model_size_bytes(d) < metrics.model_size_bytes(model) / 1.5


def test_int8_scorer_refuses_gradients_with_a_clear_message(setup):
    model, calibration, test = setup
    q = quantize_static(model, calibration[:64])
    assert isinstance(q, ScoreOnly)
    with pytest.raises(RuntimeError, match="sample with the float model"):
        q(test[:2].clone().requires_grad_(True))
    with pytest.raises(ValueError, match="unconditional"):
        q(test[:2], torch.tensor([0, 1]))
