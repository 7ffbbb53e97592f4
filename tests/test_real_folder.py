"""`--data PATH` on a real labelled image folder that is not glyphs: scikit-learn's digits,
written the way a scanner and a file manager leave them (mixed formats and modes, odd sizes,
stray files). The job must train on it and classify sensibly."""
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from conftest import run_cli


def write_messy_digits(root):
    digits = load_digits()
    rng = np.random.default_rng(0)
    for i, (img, label) in enumerate(zip(digits.images, digits.target)):
        d = root / f"digit_{label}"
        d.mkdir(parents=True, exist_ok=True)
        grey = (255 - img * 255 / 16).astype(np.uint8)          # dark digit on light paper
        size = (int(rng.integers(20, 64)), int(rng.integers(20, 64)))
        pil = Image.fromarray(grey).resize(size, Image.BILINEAR)
        kind = i % 4
        if kind == 0:
            pil.save(d / f"scan_{i}.png")
        elif kind == 1:
            pil.convert("RGB").save(d / f"scan_{i}.JPG", quality=90)
        elif kind == 2:
            pil.convert("RGBA").save(d / f"scan_{i}.png")
        else:
            pil.save(d / f"scan_{i}.tif")
    for junk in (".DS_Store", "Thumbs.db", "notes.txt"):
        (root / "digit_3" / junk).write_bytes(b"\x00junk")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._scan_1.png").write_bytes(b"\x00")
    return root


@pytest.mark.slow
def test_trains_on_a_messy_folder_of_another_dataset(tmp_path):
    data = write_messy_digits(tmp_path / "digits")
    out = tmp_path / "run"
    # the quick profile, with its floor of training steps lowered from 880 to 250 and its CNN 16
    # wide instead of 24 (test time): the 1797 digits make 10 batches an epoch, so 10 epochs alone
    # would stop at 100 steps
    r = run_cli(["--profile", "quick", "--data", data, "--out", out, "--no-progress", "--set", "min_steps=250",
                 "--set", "hidden=16",
                 "--set", "gen_steps=32", "--set", "gen_samples=16", "--set", "ood_n=300"], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert metrics["num_classes"] == 10
    assert config["classes"] == [f"digit_{i}" for i in range(10)]
    assert sum(config["split_sizes"].values()) == 1797
    assert metrics["global_steps"] >= 250, "small data sets train for more epochs, up to min_steps"
    assert metrics["test_accuracy"] >= 0.85, metrics
    assert metrics["ood_auroc"]["noise"] >= 0.9, metrics
