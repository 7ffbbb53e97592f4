"""The shipped pretrained weights: small, loadable into the reference, and self-describing."""
import pytest
import torch

from conftest import SOLUTIONS
from glyph_course import pretrained
from glyph_ebm.errors import CheckpointError


def test_shipped_file_is_small_and_describes_itself():
    assert pretrained.DEFAULT.stat().st_size < 5e6
    meta = pretrained.info()
    assert meta["config"]["profile"] == "quick" and meta["seed"] == 0
    assert meta["num_classes"] == 42 and len(meta["classes"]) == 42
    assert meta["metrics"]["test_accuracy"] > 0.9
    assert set(meta["metrics"]["ood_auroc"]) >= {"noise", "rotated", "small", "digits"}


def test_loads_into_the_reference_model_in_eval_mode():
    model, meta = pretrained.load(code_dir=SOLUTIONS)
    assert not model.training
    x = torch.rand(3, 1, 56, 56) * 2 - 1
    with torch.no_grad():
        f = model(x)
        logits = model.get_logits(x)
    assert f.shape == (3,) and torch.allclose(f, torch.logsumexp(logits, 1))


def test_export_round_trip(tmp_path):
    from ex3_main import JEM
    from glyph_ebm.config import TrainConfig

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    jem = JEM(TrainConfig(hidden=4), num_classes=5, img_shape=(1, 16, 16))
    torch.save({"state_dict": jem.state_dict(), "hyper_parameters": dict(jem.hparams)}, run / "checkpoints" / "last.ckpt")
    target = pretrained.export(run, tmp_path / "w.pt")
    model, meta = pretrained.load(target, code_dir=SOLUTIONS)
    assert meta["num_classes"] == 5
    for name, value in jem.cnn.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="make pretrained"):
        pretrained.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a glyph-ebm pretrained file"):
        pretrained.load(tmp_path / "junk.pt")
    other = tmp_path / "other"
    other.mkdir()
    (other / "ex3_model.py").write_text((SOLUTIONS / "ex3_model.py").read_text().replace("c1, c2, c3 = hidden, 2 * hidden, 4 * hidden",
                                                                                          "c1, c2, c3 = hidden, 3 * hidden, 4 * hidden"))
    with pytest.raises(CheckpointError, match="do not fit"):
        pretrained.load(code_dir=other)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        pretrained.export(tmp_path, tmp_path / "x.pt")
