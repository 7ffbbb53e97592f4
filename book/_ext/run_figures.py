"""Local Sphinx extension: the figures of the shipped model, taken when the site is built.

Pages never type a measured figure. They write a MyST substitution such as
``{{ test_accuracy }}`` or ``{{ auroc_rotated }}``, and this extension fills the substitutions
from the metrics stored in ``pretrained/jem_quick.pt`` (through
:func:`glyph_course.pretrained.figures`, the same text the README's generated block shows).
After ``make pretrained`` the next ``make book`` shows the new model's figures.

The keys: ``test_accuracy``, ``auroc_noise``, ``auroc_uniform``, ``auroc_rotated``,
``auroc_flipped``, ``auroc_small``, ``auroc_digits``, ``train_seconds``, ``epochs``, ``steps``,
``seed``, ``profile``, ``mode``.
"""
from pathlib import Path


def weights_file(confdir) -> Path:
    """The shipped model: ``pretrained/jem_quick.pt`` next to the ``book/`` folder."""
    return Path(confdir).resolve().parent / "pretrained" / "jem_quick.pt"


def substitutions(confdir) -> dict:
    from glyph_course import pretrained

    return pretrained.figures(pretrained.info(weights_file(confdir)))


def _fill(app, config):
    values = substitutions(app.confdir)
    typed = set(values) & set(config.myst_substitutions or {})
    if typed:
        raise RuntimeError(f"book/_config.yml sets myst_substitutions {sorted(typed)}; these come "
                           "from pretrained/jem_quick.pt (book/_ext/run_figures.py)")
    config.myst_substitutions = {**(config.myst_substitutions or {}), **values}


def setup(app):
    app.connect("config-inited", _fill)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
