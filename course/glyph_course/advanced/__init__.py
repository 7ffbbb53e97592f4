"""Advanced training of energy-based models (course chapter "advanced training").

Techniques of Du & Mordatch (2019, IGEBM) and Du et al. (2021, improved contrastive divergence)
on the glyph JEM. The chapter *extends* the exercise instead of copying it: the SGLD step, the
replay buffer, the contrastive loss and the training step are those of the reference exercise
(``solutions/ex3_main.py``, loaded through :mod:`glyph_course.reference`), subclassed where the
chapter needs more. One short module per idea:

* :mod:`.sampler`    - ``ChapterSampler``, the exercise's ``MCMCSampler`` with temperature,
  clamped pixels, composed energies, augmentation jumps, the reservoir buffer, uniform fresh
  chains, chain starts from buffer / data / noise, past samples and the differentiable KL path;
* :mod:`.kl`         - the KL term of improved CD (energy under frozen parameters of the
  sampler's differentiable last step(s)) and the nearest-neighbour entropy estimate;
* :mod:`.augment`    - class-preserving glyph augmentations (shift, rotate, scale, stroke
  weight, blur, contrast; no flips);
* :mod:`.multiscale` - energies at full, half and quarter resolution, summed;
* :mod:`.spectral`   - spectral normalisation of every conv/linear layer;
* :mod:`.chains`     - the three chain starts (persistent buffer, data, noise) compared;
* :mod:`.losses`     - the chapter's loss terms: IGEBM's softmax weights (as a correction of
  the exercise's contrastive loss) and improved CD's KL combination;
* :mod:`.restore`    - inpainting and denoising with clamped pixels;
* :mod:`.compose`    - cross-class mapping and compositional generation (sums of energies);
* :mod:`.config`, :mod:`.training` - :class:`AdvancedConfig` and ``AdvancedJEM``, the
  exercise's ``JEM`` subclassed, with every switch; the exponential moving average of the
  weights (``ema_decay``) is Lightning's ``EMAWeightAveraging`` callback, which
  :func:`glyph_ebm.training.build_trainer` adds: after fitting, the module's weights are the
  averaged ones;
* :mod:`.ablate`     - ``glyph-course ablate``: an ablation table in the spirit of Table 2 of
  Du et al. (2021).

``ChapterSampler`` and ``AdvancedJEM`` are built when first used (importing the modules runs no
exercise code). Conventions as in the exercise: images ``(B, 1, H, W)`` in [-1, 1]; every
network returns the negative energy ``f(x) = -E(x)`` of shape ``(B,)`` from
``forward(x, y=None)`` and class logits ``(B, C)`` from ``get_logits(x)``; ``p(x) ∝ exp(f(x) / T)``.
"""
