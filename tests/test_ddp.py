"""Scale-out: Lightning DDP with 2 CPU processes, each rank with its own replay buffer."""
import json

import pytest
import torch

from conftest import run_cli


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    r = run_cli(["--profile", "smoke", "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu",
                 "--out", out, "--no-progress"], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"].startswith("2x DDP")
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # smoke: 2 epochs x max 4 batches per rank (each rank reads its own half of the data)
    assert ckpt["global_step"] == 8
    # the checkpoint holds rank 0's buffer, seeded for rank 0 (rank r uses seed*1000 + r)
    assert ckpt["sampler"]["seed"] == 0
    assert len(ckpt["sampler"]["buffer"]) > 0
    assert r.stdout.count("=== glyph-ebm run") == 1, "only rank 0 evaluates and prints the summary"
