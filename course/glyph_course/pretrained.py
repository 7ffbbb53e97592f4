"""The small pretrained JEM that the notebooks and the book use (``pretrained/jem_quick.pt``).

It is made by our own training code, reproducibly: ``make pretrained`` trains the reference
with the quick profile and seed 0 into ``runs/pretrained`` and then calls :func:`export`, which
keeps only what a reader needs: the energy network's weights (float32), the configuration,
the class names, the run's metrics and how it was made. The replay buffer and the optimiser
state stay in the run folder (they would make the file ~30x larger).

    glyph-course pretrained runs/pretrained pretrained/jem_quick.pt --figures README.md docs/measurements.md

:func:`load` rebuilds the network from any exercise folder's ``ex3_model.CNNModel`` (the
reference by default, or a student's ``ex3/`` with the same architecture) and returns it in
eval mode, with ``forward(x, y=None) = f(x) = -E(x)``.

Figures of the run are never typed into prose: :func:`figures` turns the stored metrics into
strings, which the course website takes at build time (``book/_ext/run_figures.py``, as MyST
substitutions) and which :func:`write_figures_block` writes between marker comments into the
README (``make pretrained`` does it; a test compares the block with the shipped file).
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import torch

from glyph_ebm.errors import CheckpointError, run_command
from glyph_ebm.files import atomic_write

from .paths import PRETRAINED
from .reference import exercise

DEFAULT = PRETRAINED
FORMAT = "glyph-ebm-pretrained-1"


def export(run_dir: str | os.PathLike, target: str | os.PathLike = DEFAULT, command: str | None = None) -> Path:
    """Write the weights-only file for the run in ``run_dir`` to ``target`` (atomically)."""
    run_dir, target = Path(run_dir), Path(target)
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt_path.exists():
        raise CheckpointError(f"no checkpoint at {ckpt_path}; train first (make pretrained does both steps)")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    hparams = ckpt["hyper_parameters"]
    weights = {k[len("cnn."):]: v.float().contiguous() for k, v in ckpt["state_dict"].items() if k.startswith("cnn.")}
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    info = {
        "format": FORMAT,
        "config": hparams["config"],
        "num_classes": hparams["num_classes"],
        "img_shape": hparams["img_shape"],
        "classes": metrics.get("classes") or _embedded_classes(hparams["config"]),
        "metrics": {k: metrics[k] for k in ("test_accuracy", "ood_auroc", "train_seconds", "epochs",
                                            "global_steps", "samples") if k in metrics},
        "seed": hparams["config"]["seed"],
        "torch": str(torch.__version__),
        "made_by": command or (f"python ex3_main.py --profile {hparams['config']['profile']} "
                               f"--seed {hparams['config']['seed']} (mode {hparams['config']['mode']}), "
                               "weights exported by glyph_course.pretrained"),
    }
    with atomic_write(target, binary=True) as fh:
        torch.save({"info": info, "state_dict": weights}, fh)
    return target


def _embedded_classes(config: dict):
    if config.get("data"):
        return None   # a folder of scans: its class names are in that run's folder, not known here
    from glyph_ebm.glyphs import CLASSES

    return list(CLASSES)


def info(path: str | os.PathLike = DEFAULT) -> dict:
    """The metadata stored with the pretrained weights (config, metrics, seed, ...)."""
    return _read(Path(path))["info"]


def _read(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"pretrained weights {path} not found; run `make pretrained` to make them")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise CheckpointError(f"{path} is not a glyph-ebm pretrained file ({type(exc).__name__}: {exc})") from None
    if not isinstance(blob, dict) or blob.get("info", {}).get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a glyph-ebm pretrained file (format {FORMAT} expected)")
    return blob


def load(path: str | os.PathLike = DEFAULT, code_dir: str | os.PathLike | None = None):
    """``(model, info)``: ``code_dir``'s ``CNNModel`` with the pretrained weights, in eval mode."""
    blob = _read(Path(path))
    meta = blob["info"]
    model = exercise(code_dir).model.CNNModel(num_classes=meta["num_classes"], hidden=meta["config"]["hidden"],
                            in_channels=meta["img_shape"][0])
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"the pretrained weights do not fit CNNModel of {code_dir or 'solutions/'}: "
                              f"{first[1].strip() if len(first) > 1 else first[0]}") from None
    return model.eval(), meta


#: the OOD sets in the order the figures list them
OOD_SETS = ("noise", "uniform", "rotated", "flipped", "small", "digits")
BEGIN = "<!-- BEGIN pretrained-figures: generated from pretrained/jem_quick.pt by `make pretrained`; do not edit -->"
END = "<!-- END pretrained-figures -->"
_BLOCK = re.compile(re.escape(BEGIN.split(":")[0]) + r".*?" + re.escape(END), re.S)


def figures(meta: dict | None = None) -> dict[str, str]:
    """The run's figures as the text that pages show: ``test_accuracy``, ``auroc_<set>`` (three
    decimals), ``train_seconds``, ``epochs``, ``steps``, ``seed``, ``profile``, ``mode``, and, when
    the run judged its samples, ``inception_score``, ``classes_covered`` (of ``num_classes``),
    ``sample_count`` and ``sample_steps``."""
    meta = info() if meta is None else meta
    m = meta["metrics"]
    out = {"test_accuracy": f"{m['test_accuracy']:.3f}",
           **{f"auroc_{name}": f"{m['ood_auroc'][name]:.3f}" for name in OOD_SETS if name in m["ood_auroc"]},
           "seed": str(meta["seed"]), "profile": str(meta["config"]["profile"]),
           "mode": str(meta["config"]["mode"])}
    for key, name in (("train_seconds", "train_seconds"), ("epochs", "epochs"), ("global_steps", "steps")):
        if key in m:
            out[name] = f"{m[key]:.0f}"
    judged = m.get("samples") or {}
    if "inception_score" in judged:
        out.update(inception_score=f"{judged['inception_score']:.1f}", classes_covered=str(judged["classes_covered"]),
                   num_classes=str(meta["num_classes"]),
                   sample_count=str(judged["n"]), sample_steps=str(judged["steps"]))
    return out


def figures_block(meta: dict | None = None) -> str:
    """The README's block of the shipped model's figures (Markdown, marker comments included)."""
    f = figures(meta)
    sets = [name for name in OOD_SETS if f"auroc_{name}" in f]
    run = f"`python ex3_main.py --profile {f['profile']} --mode {f['mode']} --seed {f['seed']}`"
    if "steps" in f:
        run += f": {f['steps']} steps, {f.get('epochs', '?')} epochs, trained in {f.get('train_seconds', '?')} s"
    return "\n".join([
        BEGIN,
        f"The shipped model `pretrained/jem_quick.pt`, made by {run}:",
        "",
        "| test accuracy | " + " | ".join(f"AUROC {name}" for name in sets) + " |",
        "|---|" + "---|" * len(sets),
        f"| {f['test_accuracy']} | " + " | ".join(f[f"auroc_{name}"] for name in sets) + " |",
        *(["", f"Its {f['sample_count']} samples ({f['sample_steps']} SGLD steps from noise), judged by the package's "
               f"glyph classifier: inception score {f['inception_score']}, {f['classes_covered']} of the "
               f"{f['num_classes']} classes."] if "inception_score" in f else []),
        END,
    ])


def write_figures_block(path: str | os.PathLike, meta: dict | None = None) -> bool:
    """Rewrite the marker block in ``path`` with :func:`figures_block`; ``True`` if it changed.
    A file without the markers is an error (the block is placed by hand once)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if not _BLOCK.search(text):
        raise CheckpointError(f"{path} has no figures block ({BEGIN.split(':')[0]} ... {END})")
    new = _BLOCK.sub(lambda _: figures_block(meta), text, count=1)
    if new == text:
        return False
    with atomic_write(path, binary=True) as fh:
        fh.write(new.encode("utf-8"))
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="glyph-course pretrained",
                                description="export the weights-only pretrained file from a run folder; "
                                            "without RUN_DIR, only rewrite the --figures blocks from the shipped file")
    p.add_argument("run_dir", type=Path, nargs="?", default=None)
    p.add_argument("target", type=Path, nargs="?", default=DEFAULT)
    p.add_argument("--figures", type=Path, nargs="*", default=[], metavar="FILE",
                   help="also rewrite the generated block of the model's figures in these files "
                        "(make pretrained: README.md docs/measurements.md)")
    args = p.parse_args(argv)
    if args.run_dir is None and not args.figures:
        p.error("give a run folder to export, or --figures FILE ... to rewrite the figures blocks")

    def job() -> None:
        target = args.target
        if args.run_dir is not None:
            export(args.run_dir, target)
        meta = info(target)
        if args.run_dir is not None:
            print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB): test accuracy "
                  f"{meta['metrics'].get('test_accuracy', float('nan')):.3f}, seed {meta['seed']}")
        for path in args.figures:
            changed = write_figures_block(path, meta)
            print(f"{'rewrote' if changed else 'kept'} the figures block in {path}")

    return run_command(job)
