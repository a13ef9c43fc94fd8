"""The samplers a user can pick, by short name, built from a model's own scheduler config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    SchedulerMixin,
)

from dd_live.errors import ConfigError

# name -> (scheduler class, config overrides); "plms" is the reference release's sampler
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "ddim": (DDIMScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "plms": (PNDMScheduler, {"skip_prk_steps": True}),
    "lcm": (LCMScheduler, {}),
}
DEFAULT_SCHEDULER = "dpm++"
LCM_MAX_STEPS = 8


def make_scheduler(name: str, base_config: Mapping[str, Any]) -> SchedulerMixin:
    """A scheduler of kind ``name`` sharing the model's noise schedule (betas, spacing, offset).

    ``base_config`` is the ``scheduler_config.json`` of the model (any scheduler class): the
    training noise schedule lives there; keys another class does not know are ignored.
    """
    if name not in SCHEDULERS:
        raise ConfigError(f"scheduler {name!r} is not one of {', '.join(SCHEDULERS)}")
    cls, overrides = SCHEDULERS[name]
    return cls.from_config(dict(base_config), **overrides)


def model_scheduler(config: Mapping[str, Any]) -> SchedulerMixin:
    """The model's own scheduler (class named by ``_class_name``) with every default filled in.

    Switching from it with ``from_config(scheduler.config)`` is how diffusers documents changing
    samplers; it carries e.g. SD 1.5's ``timestep_spacing="leading"`` over to DPM-Solver.
    """
    class_name = config.get("_class_name", PNDMScheduler.__name__)
    cls = getattr(diffusers, class_name, None)
    if cls is None or not issubclass(cls, SchedulerMixin):
        raise ConfigError(f"scheduler config names {class_name!r}, which is not a diffusers scheduler")
    return cls.from_config(dict(config))
