"""Tables, figures and acceptance checks of a compression study (see :mod:`.study`).

Every number is relative to the ``baseline`` row (the float32 model): size ratio
``baseline bytes / bytes`` (higher = smaller), speed ratio ``baseline latency / latency``
(higher = faster), AUROC change ``AUROC - baseline AUROC`` per OOD set.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from glyph_ebm import plots
from glyph_ebm.files import write_text

COLUMNS = ("name", "method", "variant", "ratio", "finetuned", "params_nonzero", "params_total", "size_bytes",
           "size_ratio", "latency_batch_ms", "latency_single_ms", "speedup_batch", "speedup_single",
           "accuracy", "is", "fid", "max_auroc_drop", "build_s", "eval_s")


def auroc_sets(rows) -> list[str]:
    return [k[len("auroc_"):] for k in rows[0] if k.startswith("auroc_")]


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def derive(rows: list[dict]) -> list[dict]:
    """Add the ratios against the baseline to every row (a new list of new dicts)."""
    base = next(r for r in rows if r["name"] == "baseline")
    sets = auroc_sets(rows)
    out = []
    for r in rows:
        d = dict(r)
        d["size_ratio"] = base["size_bytes"] / r["size_bytes"]
        for kind in ("batch", "single"):        # the baseline timed beside this model, when stored
            reference = r.get(f"baseline_latency_{kind}_ms", base[f"latency_{kind}_ms"])
            d[f"speedup_{kind}"] = reference / r[f"latency_{kind}_ms"]
        deltas = {s: r[f"auroc_{s}"] - base[f"auroc_{s}"] for s in sets}
        d.update({f"delta_auroc_{s}": v for s, v in deltas.items()})
        d["max_auroc_drop"] = max(0.0, -min(deltas.values()))
        d["max_auroc_change"] = max(abs(v) for v in deltas.values())
        d["param_share"] = r["params_total"] / base["params_total"]
        out.append(d)
    return out


def one_line(row: dict) -> str:
    acc = "-" if row.get("accuracy") is None else f"{row['accuracy']:.3f}"
    au = " ".join(f"{k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("auroc_"))
    q = f" IS {row['is']:.2f} FID {row['fid']:.1f}" if "fid" in row else ""
    return f"{row['params_nonzero']}/{row['params_total']} params, acc {acc}, AUROC {au}{q}"


# -- acceptance ----------------------------------------------------------------------------------
def checks(rows: list[dict]) -> list[dict]:
    """The issue's acceptance points, evaluated on the study's rows (where they were run)."""
    rows = derive(rows)
    by = {r["name"]: r for r in rows}
    base = by["baseline"]
    out = []
    q = by.get("int8-static")
    if q:
        ok = q["size_ratio"] >= 3.5 and q["speedup_batch"] > 1.0 and q["max_auroc_change"] <= 0.02
        out.append({"check": "int8 static: >= 3.5x smaller, faster batch scoring, every AUROC within 0.02",
                    "ok": ok, "found": f"{q['size_ratio']:.2f}x smaller, {q['speedup_batch']:.2f}x batch speed, "
                                       f"max |AUROC change| {q['max_auroc_change']:.3f}"})
    p = by.get("prune-unstructured-global-50-ft")
    if p:
        drop = base["accuracy"] - p["accuracy"]
        ok = drop <= 0.02 and p["max_auroc_drop"] <= 0.02
        out.append({"check": "unstructured 50 % global + fine-tune: accuracy within 2 points, no AUROC lower by > 0.02",
                    "ok": ok, "found": f"accuracy {p['accuracy']:.3f} (baseline {base['accuracy']:.3f}), "
                                       f"largest AUROC drop {p['max_auroc_drop']:.3f}"})
    small = [r for r in rows if r["method"] == "distill" and r["param_share"] <= 1 / 50]
    if small:
        best = min(small, key=lambda r: r["max_auroc_drop"])
        ok = best["max_auroc_drop"] <= 0.03
        out.append({"check": "best student with <= 1/50 of the parameters: no AUROC lower than the teacher's by > 0.03",
                    "ok": ok, "found": f"{best['name']} ({best['params_total']} parameters, 1/"
                                       f"{1 / best['param_share']:.0f}): largest AUROC drop {best['max_auroc_drop']:.3f}"})
    return out


# -- tables ----------------------------------------------------------------------------------------
def write_csv(rows: list[dict], path: Path) -> Path:
    rows = derive(rows)
    sets = auroc_sets(rows)
    cols = list(COLUMNS) + [f"auroc_{s}" for s in sets] + [f"delta_auroc_{s}" for s in sets]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r[k]))
                    for k in cols})
    write_text(path, buf.getvalue())
    return path


def _fmt(v, spec: str) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def markdown(rows: list[dict]) -> str:
    rows = derive(rows)
    sets = auroc_sets(rows)
    head = ("| model | non-zero / total params | file KB | smaller | faster (batch) | accuracy | "
            + " | ".join(f"AUROC {s}" for s in sets) + " | IS | FID |")
    rule = "|" + "---|" * (9 + len(sets) - 1)
    parts = ["# Compression study", "",
             "Ratios are against the float32 baseline (smaller = baseline bytes / bytes, faster = baseline "
             "latency / latency for a batch of 256 on the CPU, the two models timed in turn so that both see the "
             "same machine load; unstructured-pruned sizes use the bitmask format of "
             "`prune.compact_state_dict`). AUROC: energy score, ID 0 / OOD 1, the change "
             "against the baseline in brackets. IS and FID: long-run SGLD samples judged by our glyph "
             "classifier (int8 models cannot be sampled: no input gradients).", ""]
    titles = {"baseline": "Baseline", "quantize": "Quantization (scoring only)", "prune": "Pruning",
              "distill": "Distillation"}
    for method, title in titles.items():
        group = [r for r in rows if r["method"] == method]
        if not group:
            continue
        parts += [f"## {title}", "", head, rule]
        for r in group:
            au = " | ".join(f"{r[f'auroc_{s}']:.3f} ({r[f'delta_auroc_{s}']:+.3f})" for s in sets)
            parts.append(f"| {r['name']} | {r['params_nonzero']:,} / {r['params_total']:,} | "
                         f"{r['size_bytes'] / 1024:.1f} | {r['size_ratio']:.2f}x | {r['speedup_batch']:.2f}x | "
                         f"{_fmt(r.get('accuracy'), '.3f')} | {au} | {_fmt(r.get('is'), '.2f')} | "
                         f"{_fmt(r.get('fid'), '.1f')} |")
        parts.append("")
    found = checks(rows)
    if found:
        parts += ["## Acceptance checks", ""]
        parts += [f"- {'PASS' if c['ok'] else 'FAIL'}: {c['check']} - {c['found']}" for c in found]
        parts.append("")
    return "\n".join(parts)


# -- figures ---------------------------------------------------------------------------------------
def _mean_auroc(r, sets) -> float:
    return float(np.mean([r[f"auroc_{s}"] for s in sets]))


def pruning_curves(rows: list[dict], path: Path) -> Path | None:
    """FID, IS, mean OOD AUROC and accuracy against the pruning ratio: one colour per strategy,
    dashed without and solid with fine-tuning; the grey line is the unpruned model."""
    rows = derive(rows)
    pruned = [r for r in rows if r["method"] == "prune"]
    if not pruned:
        return None
    base = rows[0]
    sets = auroc_sets(rows)
    panels = [("fid", "FID (lower is better)"), ("is", "IS (higher is better)"),
              ("mean_auroc", "mean OOD AUROC"), ("accuracy", "test accuracy")]
    fig = Figure(figsize=(16, 4))
    axes = fig.subplots(1, len(panels))
    strategies = list(dict.fromkeys(r["variant"] for r in pruned))
    colours = {s: f"C{i}" for i, s in enumerate(strategies)}
    for ax, (key, title) in zip(axes, panels):
        value = (lambda r: _mean_auroc(r, sets)) if key == "mean_auroc" else (lambda r, key=key: _num(r.get(key)))
        for s in strategies:
            for tuned in (False, True):
                pts = sorted((r["ratio"], value(r)) for r in pruned if r["variant"] == s and r["finetuned"] == tuned)
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, "-o" if tuned else "--o", color=colours[s], ms=3, lw=1.2,
                            label=f"{s}{' + fine-tune' if tuned else ''}")
        ax.axhline(value(base), color="grey", lw=1, label="unpruned")
        ax.set_xlabel("pruning ratio")
        ax.set_title(title, fontsize=10)
        if key == "fid":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return plots._save(fig, path)


def distillation_curves(rows: list[dict], path: Path) -> Path | None:
    """Students against their parameter count (log scale): FID, IS and AUROC per OOD set; dotted
    lines are the teacher's values."""
    rows = derive(rows)
    students = sorted([r for r in rows if r["method"] == "distill" and r.get("fid") is not None],
                      key=lambda r: r["params_total"])
    if not students:
        return None
    base = rows[0]
    sets = auroc_sets(rows)
    fig = Figure(figsize=(13, 4))
    ax_fid, ax_is, ax_au = fig.subplots(1, 3)
    xs = [r["params_total"] for r in students]
    for ax, key, title in ((ax_fid, "fid", "FID (lower is better)"), (ax_is, "is", "IS (higher is better)")):
        ax.plot(xs, [r[key] for r in students], "-o", ms=3)
        ax.axhline(base[key], color="grey", ls=":", label="teacher")
        ax.set_title(title, fontsize=10)
    for i, s in enumerate(sets):
        ax_au.plot(xs, [r[f"auroc_{s}"] for r in students], "-o", ms=3, color=f"C{i}", label=s)
        ax_au.axhline(base[f"auroc_{s}"], color=f"C{i}", ls=":", lw=1)
    ax_au.set_title("OOD AUROC per set (dotted: teacher)", fontsize=10)
    ax_au.legend(fontsize=7)
    for ax in (ax_fid, ax_is, ax_au):
        ax.set_xscale("log")
        ax.set_xlabel("student parameters")
        ax.axvline(base["params_total"] / 50, color="k", lw=0.6, ls="--")
    ax_fid.legend(fontsize=7)
    fig.tight_layout()
    return plots._save(fig, path)


def pick_showcase(rows: list[dict]) -> list[dict]:
    """Baseline, the best pruned model at >= 50 % (lowest FID) and the best student (lowest FID)."""
    rows = derive(rows)
    chosen = [rows[0]]
    pruned = [r for r in rows if r["method"] == "prune" and r["ratio"] >= 0.5 and r.get("fid") is not None]
    students = [r for r in rows if r["method"] == "distill" and r.get("fid") is not None]
    for group in (pruned, students):
        if group:
            chosen.append(min(group, key=lambda r: r["fid"]))
    return chosen


def samples_path(out_dir, name: str) -> Path:
    """Where the study keeps the samples of row ``name`` (uint8 ``(N, H, W)``, key ``samples``)."""
    return Path(out_dir) / "rows" / f"{name}.npz"


def load_samples(out_dir, name: str):
    """The stored samples of row ``name`` as a float tensor ``(N, 1, H, W)`` in [-1, 1] (None if
    that row was not sampled)."""
    import torch

    path = samples_path(out_dir, name)
    if not path.exists():
        return None
    with np.load(path) as data:
        a = data["samples"].astype(np.float32)
    return torch.from_numpy(a / 127.5 - 1.0)[:, None]


def side_by_side(rows: list[dict], out_dir: Path, path: Path) -> Path | None:
    chosen = [(r, load_samples(out_dir, r["name"])) for r in pick_showcase(rows)]
    chosen = [(r, s) for r, s in chosen if s is not None]
    if not chosen:
        return None
    fig = Figure(figsize=(4.2 * len(chosen), 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(chosen)))
    for ax, (r, s) in zip(axes, chosen):
        ax.imshow(plots.tile(s[:25], nrow=5), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{r['name']}\n{r['params_nonzero']:,} params, FID {r['fid']:.1f}, IS {r['is']:.2f}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return plots._save(fig, path)


def write_all(rows: list[dict], out_dir: Path, study=None) -> dict:
    """``results.csv``, ``results.md``, ``pruning_curves.png``, ``distillation.png`` and
    ``samples_side_by_side.png`` in ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    paths = {"csv": write_csv(rows, out_dir / "results.csv")}
    md = out_dir / "results.md"
    write_text(md, markdown(rows))
    paths["markdown"] = md
    for key, fn in (("pruning", lambda: pruning_curves(rows, out_dir / "pruning_curves.png")),
                    ("distillation", lambda: distillation_curves(rows, out_dir / "distillation.png")),
                    ("samples", lambda: side_by_side(rows, out_dir, out_dir / "samples_side_by_side.png"))):
        p = fn()
        if p is not None:
            paths[key] = p
    return paths
