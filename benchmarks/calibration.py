"""Presentation timing of ``dd-live calibrate``: how well onsets are stamped at the frame flip.

Runs the real full-screen presenter (offscreen here unless a display is set: ``QT_QPA_PLATFORM``)
on drawn images, with the simulated viewer streaming in real time and the session recording,
and reports per onset:

- the stamp error: the onset stamp (taken when the synchronous repaint + flush returned) minus
  the end of the paint (the closest view of the flip Qt gives; with a display and vsync, a
  photodiode on the ``--photodiode`` patch measures the rest);
- late frames: onsets painted more than one frame period after they were scheduled.

The baseline, measured in the same run, is the same presenter with no session behind it (no
acquisition or recorder threads): ratios show what the live recording costs the timing.

    python benchmarks/calibration.py [--trials 150] [--design rsvp]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def draw(folder: Path, n: int) -> Path:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        image = Image.new("RGB", (256, 256), tuple(int(v) for v in rng.integers(0, 256, 3)))
        x, y = (int(v) for v in rng.integers(0, 160, 2))
        ImageDraw.Draw(image).ellipse([x, y, x + 90, y + 90], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image.save(folder / f"{i:03d}.png")
    return folder


class _NoSession:
    """The baseline's stand-in for a run: same clock, no acquisition, nothing recorded."""

    def __init__(self, config, clock):
        self.config, self.clock, self.aborted, self.session = config, clock, False, None

    def flip(self, trial, onset_time=None, pixels=None):
        return onset_time

    def poll(self):
        return 0


def measure(log) -> dict:
    stamped, painted, scheduled = (np.array(v) for v in (log.stamped, log.painted, log.scheduled))
    error = (stamped - painted) * 1e3  # ms
    lateness = painted - scheduled
    return {"n": len(stamped), "error_mean_ms": float(error.mean()), "error_max_ms": float(error.max()),
            "late_fraction": float((lateness > log.frame_period).mean()),
            "lateness_median_ms": float(np.median(lateness) * 1e3), "frame_ms": log.frame_period * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--design", choices=("rsvp", "slow"), default="rsvp")
    args = parser.parse_args()

    import time

    from dd_live.calibration import (
        CalibrationConfig,
        CalibrationRun,
        find_images,
        make_schedule,
        make_stimuli,
    )
    from dd_live.config import AppConfig
    from dd_live.gui.presenter import present_fullscreen

    with tempfile.TemporaryDirectory() as tmp:
        images = draw(Path(tmp) / "img", 40)
        config = CalibrationConfig(design=args.design, n_trials=args.trials, lead_in=0.5, seed=0)
        trials = make_schedule(make_stimuli(find_images(images), config), config)
        baseline = measure(present_fullscreen(_NoSession(config, time.monotonic), trials))
        app = AppConfig().replace(source={"spec": "synthetic?viewer=1"}, record={"root": str(Path(tmp) / "runs")})
        run = CalibrationRun(config, make_stimuli(find_images(images), config), app).start()
        try:
            live = measure(present_fullscreen(run, trials))
        finally:
            run.stop()
        placed = len(run.rows)
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    print(f"calibration presenter, {args.trials} {args.design} trials, QT_QPA_PLATFORM={platform or 'default'}, "
          f"frame period {live['frame_ms']:.1f} ms")
    for name, m in (("baseline (no session)", baseline), ("calibration (viewer + recorder)", live)):
        print(f"  {name:32s} onsets {m['n']:4d}  stamp error mean {m['error_mean_ms']:.3f} ms, "
              f"max {m['error_max_ms']:.3f} ms  late frames {m['late_fraction']:.1%}  "
              f"median lateness {m['lateness_median_ms']:.2f} ms")
    ratio = live["error_mean_ms"] / max(baseline["error_mean_ms"], 1e-9)
    late = (live["late_fraction"] + 1e-9) / (baseline["late_fraction"] + 1e-9)
    print(f"  ratio calibration/baseline: stamp error x{ratio:.2f}, late-frame fraction x{late:.2f}; "
          f"{placed} of {live['n']} onsets placed in the recording")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
