"""Training code of dd-live: data sets, masked-signal pretraining, SD fine-tuning, evaluation.

Entry points (each a ``main(argv)`` and ``python -m``; all run unchanged on CPU, one GPU or
several GPUs/nodes through ``accelerate launch`` / ``torchrun``):

- ``python -m training.pretrain``: stage 1, masked-signal modelling of the EEG encoder.
- ``python -m training.finetune``: stages 2+3, Stable Diffusion conditioned on EEG with CLIP
  alignment; writes a dd-live model folder the live app loads.
- ``python -m training.evaluate``: n-way top-k accuracy, CLIP similarity, an image grid.

``training`` imports ``dd_live``; ``dd_live`` never imports ``training``.
"""

from dd_live.errors import require_extra as _require_extra

# the training code runs from a checkout with the `train` extra (see training/README.md)
for _module in ("accelerate", "open_clip", "torchvision", "tqdm"):
    _require_extra(_module, "train", "the training code (python -m training...)", target="-e .")
del _module
