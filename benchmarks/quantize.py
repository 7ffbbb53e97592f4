"""int8 vs float32 energy scoring, side by side in one run: file size, CPU latency, OOD AUROC.

    .venv/bin/python benchmarks/quantize.py [--weights pretrained/jem_quick.pt] [--threads 2]

Uses the shipped pretrained JEM (or any weights file from ``glyph_course.pretrained``), calibrates
static int8 quantization on 1,024 training glyphs and scores the test split and the OOD sets.
The last line is JSON with the ratios.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glyph_course import metrics, pretrained  # noqa: E402
from glyph_course.compression.quantize import quantize_dynamic, quantize_static  # noqa: E402
from glyph_ebm.datasets import to_tensor  # noqa: E402
from glyph_ebm.glyphs import load_glyphs  # noqa: E402
from glyph_ebm.ood import make_ood_sets  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=pretrained.DEFAULT)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=256, help="batch size of the latency measurement")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, _ = pretrained.load(args.weights)
    splits = load_glyphs(progress=False)
    calibration = to_tensor(splits.split("train")[0][:1024])
    test_np = splits.split("test")[0]
    test = to_tensor(test_np)
    ood = {k: to_tensor(v) for k, v in make_ood_sets(test_np, n=1000, seed=0).items()}
    variants = {"float32": model, "int8 static": quantize_static(model, calibration),
                "int8 dynamic": quantize_dynamic(model)}
    rows = {}
    for name, m in variants.items():
        lat = metrics.scoring_latency(m, test[:args.batch], repeats=30)
        rows[name] = {"bytes": metrics.model_size_bytes(m), "batch_ms": 1e3 * lat["batch_s"],
                      "single_ms": 1e3 * lat["single_s"], "auroc": metrics.ood_auroc(m, test, ood)}
    base = rows["float32"]
    print(f"{'model':<13} {'size (bytes)':>12} {'size ratio':>10} {'batch ms':>9} {'speed-up':>8} "
          f"{'1 image ms':>10}  max |AUROC change|")
    for name, r in rows.items():
        change = max(abs(r["auroc"][k] - base["auroc"][k]) for k in base["auroc"])
        print(f"{name:<13} {r['bytes']:>12,} {base['bytes'] / r['bytes']:>10.2f} {r['batch_ms']:>9.2f} "
              f"{base['batch_ms'] / r['batch_ms']:>8.2f} {r['single_ms']:>10.3f}  {change:.4f}")
    static = rows["int8 static"]
    print("AUROC per set (float32 -> int8 static): " + ", ".join(
        f"{k} {base['auroc'][k]:.3f}->{static['auroc'][k]:.3f}" for k in base["auroc"]))
    print(json.dumps({"size_ratio": round(base["bytes"] / static["bytes"], 3),
                      "batch_speedup": round(base["batch_ms"] / static["batch_ms"], 3),
                      "single_speedup": round(base["single_ms"] / static["single_ms"], 3),
                      "max_auroc_change": round(max(abs(static["auroc"][k] - base["auroc"][k])
                                                    for k in base["auroc"]), 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
