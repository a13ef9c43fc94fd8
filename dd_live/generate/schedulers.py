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
    TCDScheduler,
)

from dd_live.errors import ConfigError

# name -> (scheduler class, config overrides); "plms" is the reference release's sampler.
# Few-step and one-step samplers: "lcm" (LCM-LoRA, LCM-distilled UNets, and a one-step UNet
# such as DMD2's SD 1.5 generator: 1 step at t=999), "tcd" (TCD and Hyper-SD LoRAs, 1-8 steps),
# "ddim-trailing" (Hyper-SD's N-step LoRAs; trailing spacing starts at t=999, also for 1 step).
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "ddim": (DDIMScheduler, {}),
    "ddim-trailing": (DDIMScheduler, {"timestep_spacing": "trailing"}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "plms": (PNDMScheduler, {"skip_prk_steps": True}),
    "lcm": (LCMScheduler, {}),
    "tcd": (TCDScheduler, {}),
}
DEFAULT_SCHEDULER = "dpm++"
LCM_MAX_STEPS = 8
# samplers that only make sense with distilled weights (a LoRA, an LCM UNet or a one-step UNet)
DISTILLED_SCHEDULERS = ("lcm", "tcd")
# eta of schedulers whose step takes one (DDIM: 0, deterministic; TCD: its gamma, 0.3 as TCD's
# own pipeline uses)
STEP_ETA = {"tcd": 0.3}


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
