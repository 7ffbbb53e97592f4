"""Advanced training of energy-based models (course chapter "advanced training").

Techniques of Du & Mordatch (2019, IGEBM) and Du et al. (2021, improved contrastive divergence)
on the glyph JEM, one short module per idea:

* :mod:`.langevin`   - one SGLD function for everything (temperature, gradient clip, clamped
  pixels, composed energies, periodic augmentation jumps);
* :mod:`.kl`         - the KL term of improved CD (differentiating the last Langevin step(s),
  energy under frozen parameters) and the nearest-neighbour entropy estimate;
* :mod:`.augment`    - class-preserving glyph augmentations (shift, rotate, scale, stroke
  weight, blur, contrast; no flips);
* :mod:`.multiscale` - energies at full, half and quarter resolution, summed;
* :mod:`.ema`        - an exponential moving average of the weights, used for sampling;
* :mod:`.spectral`   - spectral normalisation of every conv/linear layer;
* :mod:`.buffer`     - replay buffers: the exercise's persistent scheme and improved CD's
  reservoir scheme;
* :mod:`.chains`     - where chains start (persistent buffer, data, noise) and the sampler
  that trains use;
* :mod:`.losses`     - contrastive loss, IGEBM's softmax-weighted ML loss, L2 regulariser;
* :mod:`.restore`    - inpainting and denoising with clamped pixels;
* :mod:`.compose`    - cross-class mapping and compositional generation (sums of energies);
* :mod:`.config`, :mod:`.training` - :class:`AdvancedConfig` and the Lightning module
  :class:`AdvancedJEM` with every switch;
* :mod:`.ablate`     - ``glyph-course ablate``: an ablation table in the spirit of Table 2 of
  Du et al. (2021).

Conventions as in the exercise: images ``(B, 1, H, W)`` in [-1, 1]; every network returns the
negative energy ``f(x) = -E(x)`` of shape ``(B,)`` from ``forward(x, y=None)`` and class logits
``(B, C)`` from ``get_logits(x)``; ``p(x) ∝ exp(f(x) / T)``.
"""
