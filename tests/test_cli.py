"""The main job from the command line: bad input gives one clear line and exit code 2."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

SMOKE = ["--profile", "smoke", "--no-progress"]


def write_folder(root, classes=("a", "b", "c"), per_class=12, size=(30, 40)):
    rng = np.random.default_rng(0)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.full(size, 230, np.uint8)
            img[5 + ci * 3:15 + ci * 3, 5:25] = rng.integers(0, 60)
            Image.fromarray(img).save(root / c / f"{i}.png")
    return root


def assert_clear_error(r, *needles):
    assert r.returncode == 2, f"expected exit 2, got {r.returncode}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), last
    for n in needles:
        assert n in last, f"{n!r} not in {last!r}"


def test_missing_data_folder(tmp_path):
    assert_clear_error(run_cli([*SMOKE, "--data", tmp_path / "nope", "--out", tmp_path / "run"]), "nope", "does not exist")


def test_empty_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clear_error(run_cli([*SMOKE, "--data", tmp_path / "empty", "--out", tmp_path / "run"]), "empty")


def test_single_class_folder(tmp_path):
    data = write_folder(tmp_path / "one", classes=("a",))
    assert_clear_error(run_cli([*SMOKE, "--data", data, "--out", tmp_path / "run"]), "1 class", "at least 2")


def test_corrupt_image_is_named(tmp_path):
    data = write_folder(tmp_path / "d")
    (data / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert_clear_error(run_cli([*SMOKE, "--data", data, "--out", tmp_path / "run"]), "broken.png")


@pytest.mark.parametrize("args,needle", [(["--profile", "fast"], "unknown profile 'fast'"),
                                         (["--mode", "gan"], "unknown mode 'gan'"),
                                         (["--set", "sgld_stepz=3"], "unknown setting 'sgld_stepz'"),
                                         (["--set", "lr=fast"], "lr=fast")])
def test_unknown_options(tmp_path, args, needle):
    r = run_cli(["--no-progress", "--small", "--out", tmp_path / "run", *args])
    assert_clear_error(r, needle)


def test_resume_without_checkpoint(tmp_path):
    assert_clear_error(run_cli([*SMOKE, "--out", tmp_path / "run", "--resume"]), "no checkpoint")


def test_resume_refuses_settings_that_would_change_the_run(tmp_path):
    from glyph_ebm.config import profile_config

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({**profile_config("smoke").to_dict(), "classes": ["a", "b"]}))
    r = run_cli([*SMOKE, "--out", out, "--resume", "--set", "step_size=5"])
    assert_clear_error(r, "--resume continues the run", "step_size")
    r = run_cli(["--no-progress", "--out", out, "--resume", "--mode", "ebm"])
    assert_clear_error(r, "mode 'jem' -> 'ebm'")
    # how long and where it trains may change: these pass the check and stop at the missing checkpoint
    r = run_cli([*SMOKE, "--out", out, "--resume", "--epochs", "7", "--max-time", "60"])
    assert_clear_error(r, "no checkpoint")


def test_existing_run_is_not_overwritten_silently(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_clear_error(run_cli([*SMOKE, "--out", out]), "already holds a run")
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_folder_run_and_checkpoint_from_another_class_count(tmp_path):
    data = write_folder(tmp_path / "d")
    out = tmp_path / "run"
    r = run_cli([*SMOKE, "--data", data, "--out", out])
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_classes"] == 3
    assert set(metrics["ood_auroc"]) >= {"noise", "rotated", "small", "digits"}
    for f in ("samples.png", "generation_chain.png", "ood_hist.png", "roc.png", "config.json",
              "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (out / f).exists(), f
    write_folder(data, classes=("d",))          # the folder grows a 4th class
    r = run_cli([*SMOKE, "--out", out, "--resume", "--epochs", "3"])
    assert_clear_error(r, "3 classes", "has 4")


def test_glyph_ebm_train_runs_the_same_job(tmp_path):
    """`glyph-ebm train` (here as `python -m glyph_ebm train`) drives the exercise in the current
    folder by default and another folder with --code; the template stops at its first unfinished
    task; a folder without exercise files is a clear error."""
    import subprocess

    from conftest import PYTHON, ROOT, SOLUTIONS, TEMPLATE

    out = tmp_path / "cli"
    r = subprocess.run([PYTHON, "-m", "glyph_ebm", "train", *SMOKE, "--out", str(out)], cwd=SOLUTIONS,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["profile"] == "smoke" and metrics["samples"]["conditional"] is False, metrics
    r = subprocess.run([PYTHON, "-m", "glyph_ebm", "train", "--code", str(TEMPLATE), *SMOKE,
                        "--out", str(tmp_path / "student")], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 3 and "Exercise 3.2a" in r.stderr.strip().splitlines()[-1], r.stderr[-2000:]
    r = subprocess.run([PYTHON, "-m", "glyph_ebm", "train", *SMOKE, "--out", str(tmp_path / "none")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert_clear_error(r, "no exercise files", "--code DIR")
