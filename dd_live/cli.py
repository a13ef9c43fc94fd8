"""The ``dd-live`` command.

``dd-live run | demo | calibrate | replay | record | stream | devices | convert | sys-info``; ``dd-live
COMMAND --help`` says more. Heavy imports (torch, Qt) happen inside the commands that need them.
``dd-live export-bids`` writes session folders as a BIDS data set.
Exit code 0 on success; otherwise non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from dd_live import __version__
from dd_live.assets import DEMO_MODEL, demo_model_dir
from dd_live.config import (
    NO_MODEL,
    PRESETS,
    SCHEDULER_NAMES,
    AppConfig,
    apply_preset,
    merge_layers,
    read_toml,
)
from dd_live.errors import ConfigError, DDLiveError

logger = logging.getLogger("dd_live")

STATUS_PERIOD = 1.0  # s between two lines of the headless status
RATE_MARKS = 4  # status lines over which the headless images/s is measured
QT_PROBE_TIMEOUT = 20.0  # s for the subprocess that checks that a window can open
# the system libraries Qt's xcb (X11) window plugin loads (PySide6 6.5+), as packages
QT_XCB_DEBIAN = ("libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 "
                 "libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1 "
                 "libfontconfig1 libdbus-1-3")
QT_XCB_FEDORA = ("xcb-util-cursor xcb-util-wm xcb-util-keysyms xcb-util-image xcb-util-renderutil "
                 "libxkbcommon-x11 mesa-libEGL mesa-libGL fontconfig dbus-libs")
QT_INSTALL_HINT = (f"install the window's system libraries: sudo apt-get install {QT_XCB_DEBIAN} "
                   f"(Debian/Ubuntu) or sudo dnf install {QT_XCB_FEDORA} (Fedora)")
NO_MODEL_NOTE = ("no model chosen: showing (and recording) the signal without images; "
                 "add --model FOLDER for a trained model, or --model demo")
DEMO_STATE_PERIOD = 4.0  # s between two simulated thoughts in the headless demo
EXIT_ERROR = 1
EXIT_USAGE = 2


# -- building a config from the command line -------------------------------------------------------
def _add_session_options(p: argparse.ArgumentParser, *, source: bool = True) -> None:
    if source:
        p.add_argument("--source", help="source spec: synthetic[:STATE], brainflow:BOARD, "
                       "lsl:NAME, lsl-type:TYPE, lsl-id:ID, file:PATH (default: synthetic)")
    p.add_argument("--config", type=Path, help="a TOML config file (see README)")
    p.add_argument("--model", help="a dd-live model folder, the DreamDiffusion release's "
                   "generation checkpoint file, 'demo', 'tiny' (random, for tests) "
                   "or 'none' (no images); default: 'demo' for synthetic sources, 'none' else")
    p.add_argument("--model-config", metavar="DIR",
                   help="component configs (unet/, vae/, scheduler/) of a single-file --model "
                   "(default: Stable Diffusion 1.5's)")
    p.add_argument("--images", metavar="DIR",
                   help="the images markers 'image:<id>' name (ImageNet layout "
                   "<synset>/<id>.JPEG): each is shown beside the image made from its window")
    p.add_argument("--scheduler", choices=SCHEDULER_NAMES)
    p.add_argument("--steps", type=int, help="sampler steps (1 with a one-step model: --scheduler lcm)")
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help="cpu: 256 px, 4 steps, tiny decoder; gpu: native size, 4 steps, tiny "
                   "decoder, CUDA graphs; release: the DreamDiffusion release's sampling (PLMS, "
                   "250 steps, no guidance, full VAE) (only for settings you did not give)")
    p.add_argument("--unet", help="a distilled SD 1.5 UNet (folder or file) replacing the model's, "
                   "e.g. a one-step DMD2 UNet")
    p.add_argument("--lora", help="a few-step LoRA (LCM, TCD, Hyper-SD), fused at load")
    p.add_argument("--base", help="the stock SD 1.5 the embedding route renders with (a diffusers "
                   "folder, hub id or single file)")
    p.add_argument("--ip-adapter", dest="ip_adapter",
                   help="IP-Adapter SD 1.5 weights for --base (.safetensors/.bin file, folder or hub id)")
    p.add_argument("--ip-adapter-scale", dest="ip_adapter_scale", type=float,
                   help="IP-Adapter scale (1: as trained, 0: off)")
    p.add_argument("--runtime", choices=("auto", "torch", "onnx"),
                   help="the model's runtime: onnx (ONNX Runtime on the CPU, for a model folder "
                   "with an ONNX export), torch, or auto (default: onnx where it can run)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (<=1: off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--notch", type=_notch_arg, metavar="auto|off|HZ",
                   help="mains notch: auto (default: 50 or 60 Hz measured in the signal), off, "
                   "or a frequency such as 60")
    p.add_argument("--exclude", type=_names_arg, metavar="NAMES",
                   help="input channels never fed to the model, comma-separated (e.g. M1,M2)")
    p.add_argument("--headless", action="store_true", help="no window: a text status instead")
    p.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    p.add_argument("--record", metavar="DIR", nargs="?", const="",
                   help="record the session into a new folder under DIR (without DIR: under "
                   "[record] root, by default runs/)")
    p.add_argument("--lsl-out", action="store_true", help="publish what is decoded as the LSL "
                   "streams <name>-decoded and <name>-images ([output] lsl)")
    p.add_argument("--screenshot", type=Path, help="(window) save a screenshot before closing")
    p.add_argument("--reset-settings", action="store_true",
                   help="(window) forget the remembered layout, view and setup first")


def _notch_arg(text: str) -> str | float:
    word = text.strip().lower()
    if word in ("auto", "off"):
        return word
    try:
        value = float(word)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a notch: give auto, off or the mains frequency in Hz (50 or 60)")
    return value


def _names_arg(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _is_synthetic(spec: str) -> bool:
    return spec.strip().lower().partition(":")[0].partition("?")[0] == "synthetic"


def _config_from_args(args: argparse.Namespace) -> AppConfig:
    """The run's settings; a key set in a later layer wins: built-in defaults < the model
    folder's ``dd_live.json`` < the ``--config`` file < the command line."""
    file_layer = read_toml(args.config) if getattr(args, "config", None) else {}
    if not isinstance(file_layer.get("generator", {}), dict):
        raise ConfigError(f"[generator] in {args.config} must be a table of settings")
    cli: dict = {}
    gen = {}
    for arg, key in (("model", "model"), ("scheduler", "scheduler"), ("steps", "steps"),
                     ("guidance", "guidance_scale"), ("seed", "seed"), ("preset", "preset"),
                     ("unet", "unet"), ("lora", "lora"), ("model_config", "model_config"),
                     ("base", "base"), ("ip_adapter", "ip_adapter"), ("ip_adapter_scale", "ip_adapter_scale")):
        value = getattr(args, arg, None)
        if value is not None:
            gen[key] = value
    if getattr(args, "runtime", None) is not None:
        gen["runtime"] = args.runtime
    if gen:
        cli["generator"] = gen
    if getattr(args, "source", None):
        cli["source"] = {"spec": args.source}
    if getattr(args, "notch", None) is not None:
        cli["filter"] = {"notch": args.notch}
    if getattr(args, "exclude", None) is not None:
        cli["channels"] = {"exclude": args.exclude}
    if getattr(args, "images", None):
        cli["window"] = {"marker_images": str(Path(args.images).expanduser().resolve())}
    if getattr(args, "record", None) is not None:  # --record [DIR]
        cli["record"] = {"enabled": True, **({"root": str(args.record)} if str(args.record) else {})}
    if getattr(args, "lsl_out", False):
        cli["output"] = {"lsl": True}
    # a replayed session folder records again only with --record
    replay_layer = {"record": {"enabled": False}} if getattr(args, "replaying_session",
                                                             False) else {}
    if getattr(args, "recut_windows", False):  # the windows its images came from, same seeds
        replay_layer["window"] = {"mode": "recorded"}
    merged = merge_layers(file_layer, replay_layer, cli)
    spec = merged.get("source", {}).get("spec", "synthetic")
    model = merged.get("generator", {}).get("model")
    if model is None:  # the default: the demo for the synthetic headset, no images otherwise
        model = DEMO_MODEL if _is_synthetic(str(spec)) else NO_MODEL
    if model == DEMO_MODEL:  # the packaged demo model; missing is an error, never a fallback
        model = str(demo_model_dir())
    model_layer: dict = {}
    if model not in ("tiny", NO_MODEL) and Path(model).is_dir():
        # the settings the model folder is meant to run with, unless the user chose otherwise
        from dd_live.decoding import read_model_settings

        model_layer = {section: values for section, values in read_model_settings(model).items()
                       if section in AppConfig.__dataclass_fields__ and isinstance(values, dict)}
    config = AppConfig.from_layers(model_layer, merged, {"generator": {"model": model}})
    # the preset fills only what no layer set (a model folder may recommend a preset itself)
    explicit = {*model_layer.get("generator", {}), *merged.get("generator", {})}
    return config.replace(generator=apply_preset(config.generator, explicit))


def _import_window() -> None:
    """Import the window's modules (slow: Qt, pyqtgraph, scipy) while Qt is being checked."""
    import dd_live.gui.app  # noqa: F401


def _has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        sys.platform in ("darwin", "win32"))


def _missing_qt_libraries() -> list[str]:
    """System libraries Qt's xcb plugin cannot find (``ldd``; empty when none or unknown)."""
    import importlib.util
    import shutil
    import subprocess

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations or shutil.which("ldd") is None:
        return []
    root = Path(list(spec.submodule_search_locations)[0]) / "Qt"
    missing: list[str] = []
    for lib in (root / "plugins" / "platforms" / "libqxcb.so", root / "lib" / "libQt6XcbQpa.so.6"):
        if not lib.is_file():
            continue
        try:
            out = subprocess.run(["ldd", str(lib)], capture_output=True, text=True,
                                 timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            name, _, where = line.strip().partition(" => ")
            if where.strip() == "not found" and name not in missing:
                missing.append(name)
    return missing


def window_problem(while_waiting: Callable[[], object] | None = None) -> str | None:
    """Why Qt cannot open a window here (one line with the fix), or None when it can.

    Qt aborts the whole process (SIGABRT) when its platform plugin fails, so the check runs
    Qt in a short subprocess before the window is built; ``while_waiting()`` runs meanwhile
    (importing the window's modules: they load no platform plugin)."""
    import subprocess

    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return None
    if not _has_display():
        return "no display found (DISPLAY and WAYLAND_DISPLAY are unset)"
    probe = ("import sys\nfrom PySide6.QtWidgets import QApplication\n"
             "app = QApplication(sys.argv[:1])\nprint(app.platformName())\n")
    proc = subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if while_waiting is not None:
            while_waiting()
        _, err = proc.communicate(timeout=QT_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return (f"Qt did not open a window within {QT_PROBE_TIMEOUT:g} s (is the display "
                f"{os.environ.get('DISPLAY', '')!r} answering?)")
    finally:
        if proc.poll() is None:  # while_waiting raised
            proc.kill()
            proc.communicate()
    if proc.returncode == 0:
        return None
    missing = _missing_qt_libraries()
    if missing:
        return (f"Qt's window plugin needs missing system libraries ({', '.join(missing)}); "
                + QT_INSTALL_HINT)
    if "could not connect to display" in err:
        where = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY", "")
        return (f"Qt could not connect to the display {where!r} (is the X server running, and "
                f"may this user use it?)")
    lines = [line.strip() for line in err.splitlines() if line.strip()
             and not line.startswith(("Available platform plugins", "Reinstalling"))]
    cause = lines[0] if lines else f"exit status {proc.returncode}"
    return f"Qt cannot start ({cause}); {QT_INSTALL_HINT}"


# -- commands ---------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    if getattr(args, "reset_settings", False):
        from dd_live.gui.settings import reset_settings

        print(f"dd-live: forgot the remembered window settings ({reset_settings()})",
              file=sys.stderr)
    problem = None if args.headless else window_problem(while_waiting=_import_window)
    if args.headless or problem:
        if problem:
            print(f"dd-live: the window cannot open: {problem}; running headless (text status)",
                  file=sys.stderr)
        return run_headless(config, duration=args.duration,
                            cycle_states=getattr(args, "cycle_states", None))
    from dd_live.gui import run_app

    return run_app(config, duration=args.duration, screenshot=args.screenshot)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.model is None:
        args.model = "demo"
    if args.source is None:
        args.source = "synthetic"
        args.cycle_states = DEMO_STATE_PERIOD  # headless: the simulated thought changes by itself
    return cmd_run(args)


def cmd_replay(args: argparse.Namespace) -> int:
    from dd_live.sources.bids import is_bids_spec

    if is_bids_spec(args.path):
        return _replay_bids(args)
    path = Path(args.path)
    if args.config is None and (path / "config.toml").is_file():
        args.config = path / "config.toml"  # the settings the session was recorded with
        args.replaying_session = True
        from dd_live.triggers import read_recorded_windows

        args.recut_windows = (path / "events.jsonl").is_file() and bool(
            read_recorded_windows(path))
    speed = f"?speed={args.speed:g}" if args.speed is not None else ""
    args.source = f"file:{path}{speed}"
    return cmd_run(args)


def _replay_bids(args: argparse.Namespace) -> int:
    """``dd-live replay bids:ROOT?...``: one BIDS recording, with the settings its session was
    recorded with when dd-live exported it (unless --config)."""
    from dd_live.bids import recorded_settings_file

    settings = recorded_settings_file(args.path) if args.config is None else None
    if settings is not None:
        args.config, args.replaying_session = settings, True
    joiner = "&" if "?" in args.path else "?"
    args.source = args.path + (f"{joiner}speed={args.speed:g}" if args.speed is not None else "")
    return cmd_run(args)


def cmd_export_bids(args: argparse.Namespace) -> int:
    from dd_live.bids import export_bids

    def progress(k: int, n: int, exported) -> None:
        shown = f", {exported.n_stimuli} images shown" if exported.n_stimuli else ""
        again = " (written again)" if exported.replaced else ""
        print(f"[{k + 1}/{n}] {exported.folder} -> {exported.run.path} ({exported.n_samples} "
              f"samples, {exported.n_events} events{shown}){again}", flush=True)

    done = export_bids(args.sessions, args.root, args.subject, session=args.session,
                       task=args.task, overwrite=args.overwrite, reference=args.reference,
                       line_freq=args.line_freq, on_progress=progress)
    print(f"wrote {len(done)} run(s) into {args.root}; replay one: dd-live replay "
          f"'{done[0].run}'")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from dd_live.session import LiveSession

    config = _config_from_args(args).replace(record={"enabled": True, "root": str(args.out),
                                                     "name": args.name})
    session = LiveSession(config, generate=False)
    session.start()
    try:
        _wait(session, args.duration, stop_if_recording_fails=True)
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
    finally:
        session.stop()
    if session.recording_error is not None:
        return EXIT_ERROR  # the one message naming the file and the free space is logged
    segments = list(session.closed_segments)  # a stream that changed layout: one per layout
    if session.recorder is not None:
        segments.append((session.recorder.folder, session.recorder.n_samples))
    total = sum(n for _, n in segments)
    if len(segments) == 1:
        print(f"recorded {total} samples to {segments[0][0]}")
    else:
        print(f"recorded {total} samples in {len(segments)} segments (the stream changed "
              "layout): " + ", ".join(f"{folder} ({n})" for folder, n in segments))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from dd_live.calibration import CalibrationConfig, calibrate

    args.model = NO_MODEL  # a calibration shows images; it makes none
    config = _config_from_args(args)
    if args.out is not None:  # else the --config file's [record] root (default: runs)
        config = config.replace(record={"root": str(args.out)})
    calibration = CalibrationConfig(
        design=args.design, n_trials=args.trials, on=args.on, blank=args.blank,
        test_images=args.test_images, test_repeats=args.test_repeats,
        break_every=args.break_every, seed=args.seed if args.seed is not None else 0,
        copy_images=args.copy_images)
    if not args.headless and args.speed != 0:
        problem = window_problem()
        if problem is not None:
            raise ConfigError(f"{problem}; or run without a window: --headless")
    present = None
    if not args.headless:  # the full-screen window, wired here: calibration holds no Qt
        from functools import partial

        from dd_live.gui.presenter import present_fullscreen

        present = partial(present_fullscreen, screen=args.screen, photodiode=args.photodiode,
                          attention_target=args.attention_target)
    run = calibrate(args.images, calibration, config, headless=args.headless, present=present,
                    speed=args.speed, max_trials=args.max_trials)
    state = "aborted, kept" if run.aborted else "done:"
    print(f"calibration {state} {len(run.rows)} of {run.n_presented} images placed; session "
          f"in {run.folder}")
    if not args.headless and args.speed != 0:  # the window offers "Train my model"
        from dd_live.gui.training import offer_training

        model = offer_training(run.folder, config.source.spec, output_dir=args.train_out,
                               decoder=args.train_model, autostart=args.train)
        if model is not None:  # "Run live with it"
            again = ["run", "--model", str(model), "--source", config.source.spec]
            return cmd_run(build_parser().parse_args(
                again + (["--config", str(args.config)] if args.config else [])))
        return 0
    if args.train:
        return _train_after_calibration(run.folder, config.source.spec, args.train_out,
                                        args.train_model)
    return 0


def _train_after_calibration(session: Path, source: str, output_dir: Path | None,
                             decoder: str = "all") -> int:
    """``dd-live calibrate --train``: train the personal model with a progress bar, then print
    the command that runs live with it."""
    from dd_live.personal import run_command, train_personal_model

    bar = TextProgress(sys.stderr)
    try:
        model = train_personal_model(session, output_dir, decoder=decoder, progress=bar)
    finally:
        bar.close()
    print(f"personal model trained in {model.seconds:.0f} s: {model.summary}")
    print(f"run live with it:\n  {run_command(model.folder, source)}")
    return 0


class TextProgress:
    """A one-line text progress bar, ``progress(fraction, message)`` (redrawn on a terminal,
    a line per new message elsewhere)."""

    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = ""

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        filled = int(round(fraction * self.WIDTH))
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction:4.0%} {message}"
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
        elif message != self._last:
            self.stream.write(line + "\n")
        self._last = message
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def cmd_stream(args: argparse.Namespace) -> int:
    from dd_live.sources import ReplaySource
    from dd_live.sources.player import LSLPlayer

    source = ReplaySource(args.file, speed=args.speed, loop=args.loop)
    player = LSLPlayer(source, name=args.name or Path(args.file).stem)
    player.start()
    print(f"streaming {args.file} as LSL stream {player.name!r} "
          f"({source.info.n_channels} ch @ {source.info.sfreq:g} Hz); Ctrl+C to stop")
    try:
        deadline = time.monotonic() + args.duration if args.duration else None
        while not source.finished and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        player.stop()
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from dd_live.sources.discovery import (
        format_serial_port,
        list_brainflow_boards,
        list_lsl_streams,
        list_serial_ports,
    )

    streams = list_lsl_streams(timeout=args.timeout)
    print(f"LSL streams visible now ({len(streams)}):")
    for s in streams:
        print(f"  lsl:{s['name']}  type={s['type']}  id={s['source_id']}  "
              f"{s['n_channels']} ch @ {s['sfreq']:g} Hz  host={s.get('hostname', '')}")
    ports = list_serial_ports()
    usb = [p for p in ports if p["vid"] is not None]
    print(f"USB serial ports now ({len(usb)}; BrainFlow boards they may belong to):")
    for port in usb:
        print(f"  {format_serial_port(port)}")
    print("  brainflow:-1  the synthetic board (always there); Bluetooth and network boards "
          "are found when they connect: brainflow:NAME?mac_address=... or ?ip_address=...")
    if args.all_boards:
        boards = list_brainflow_boards()
        print(f"Every BrainFlow board type ({len(boards)}; use brainflow:ID or brainflow:NAME):")
        for b in boards:
            print(f"  brainflow:{b['id']:<4} {b['name']:<28} {b['n_eeg']:>3} EEG ch @ "
                  f"{b['sfreq']:g} Hz")
    else:
        print("(every BrainFlow board type: dd-live devices --all-boards)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from dd_live.errors import CheckpointError
    from dd_live.imagenet_eeg import convert_imagenet_eeg, is_imagenet_eeg

    data_options = (args.subject, args.split, args.splits, args.images)
    if any(option is not None for option in data_options) or is_imagenet_eeg(args.src):
        out = convert_imagenet_eeg(args.src, args.dst, subject=args.subject, split=args.split,
                                   splits=args.splits, images=args.images)
        print(f"wrote {out} (replay it: dd-live replay {out} --model CHECKPOINT)")
        return 0
    from dd_live.model import convert

    try:
        out = convert(args.src, args.dst)
    except CheckpointError as exc:
        if str(args.src).endswith(".safetensors"):  # a weights file: the hint does not apply
            raise
        raise CheckpointError(f"{exc} (convert also takes an ImageNet-EEG data file such as "
                              "eeg_5_95_std.pth)") from None
    print(f"wrote {out}")
    return 0


def cmd_sys_info(args: argparse.Namespace) -> int:
    from dd_live.sysinfo import collect

    for key, value in collect().items():
        print(f"{key + ':':<18}{value}")
    return 0


# -- headless status ---------------------------------------------------------------------------------
def run_headless(config: AppConfig, duration: float | None = None,
                 cycle_states: float | None = None) -> int:
    """Run a session with a one-line text status every second until ``duration`` or Ctrl+C.

    ``cycle_states``: with a synthetic source, change its simulated thought every that many
    seconds (the demo's automatic mode)."""
    from dd_live.session import LiveSession

    session = LiveSession(config, generate=config.generator.model != NO_MODEL)
    session.callbacks.error.append(
        lambda part, exc: print(f"\n[{part}] {type(exc).__name__}: {exc}", file=sys.stderr))
    session.callbacks.event.append(
        lambda ev: ev.kind != "marker" and print(f"\n[stream] {ev.kind}: {ev.description}",
                                                 file=sys.stderr))
    session.start()
    if session.decoder is not None:
        print(f"model: {session.decoder.description or config.generator.model}")
    elif config.generator.model == NO_MODEL:
        print(f"dd-live: {NO_MODEL_NOTE}", file=sys.stderr)
    print(f"source: {session.source!r}")
    markers = getattr(session.source, "marker_stream_name", None)
    if markers:
        print(f"markers: read from the LSL stream {markers!r}")
    try:
        _wait(session, duration, status=True, cycle_states=cycle_states)
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
    finally:
        session.stop()
    s = session.stats()
    made_by = ", ".join(f"{n} by {name}" for name, n in session.images_by_renderer.items())
    print(f"\n{s.n_samples} samples, {s.n_windows} windows, {s.n_images} images, "
          f"{s.n_dropped} skipped (generator busy), {s.n_rejected} rejected"
          + (f"; images made: {made_by}" if made_by else ""))
    if session.recording_path is not None:
        print(f"session saved to {session.recording_path}")
    return 0


def _wait(session, duration: float | None, status: bool = False,
          cycle_states: float | None = None, stop_if_recording_fails: bool = False) -> None:
    start = time.monotonic()
    tty = sys.stdout.isatty()
    source = session.source
    states = [state.name for state in getattr(source, "states", ())]
    next_switch = start if cycle_states and states and hasattr(source, "set_state") else None
    n_switch = 0
    marks: deque[tuple[float, int]] = deque(maxlen=RATE_MARKS)  # (time, images) for images/s
    while duration is None or time.monotonic() - start < duration:
        if next_switch is not None and time.monotonic() >= next_switch:
            source.set_state(states[n_switch % len(states)])
            print(f"\nsimulated thought: {states[n_switch % len(states)]}", flush=True)
            n_switch += 1
            next_switch += cycle_states
        time.sleep(min(STATUS_PERIOD, max(0.01, (duration or 1e9) - (time.monotonic() - start))))
        if session.finished:  # a replay: its last sample and its last image are done
            break
        if stop_if_recording_fails and session.recording_error is not None:
            break
        if session.state == "ended":  # e.g. the stream changed layout and [source] says stop
            break
        if status:
            s = session.stats()
            marks.append((time.monotonic(), s.n_images))
            (t0, n0), (t1, n1) = marks[0], marks[-1]
            per_second = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
            latency = s.last_timings.get("latency", s.last_timings.get("total"))
            line = (f"[{s.state}] {s.n_samples} samples @ {s.sfreq_measured:.0f} Hz | buffer "
                    f"{s.buffer_fill * session.config.buffer.seconds:.0f} s of "
                    f"{session.config.buffer.seconds:g} s | {s.n_images} images, "
                    f"{per_second:.1f} images/s | latency "
                    + (f"{1000 * latency:.0f} ms" if latency is not None else "-")
                    + f" | windows {s.n_windows}, skipped {s.n_dropped}, rejected {s.n_rejected}")
            print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)


# -- entry point ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dd-live", description="Real-time EEG-to-image.")
    parser.add_argument("--version", action="version", version=f"dd-live {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="the live app (window, or --headless)")
    _add_session_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="synthetic headset + the demo model, no hardware needed")
    _add_session_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("replay", help="replay a recording or a session folder")
    p.add_argument("path", help="a session folder or an EEG file (FIF, EDF, BDF, .vhdr, .set, "
                   ".xdf, OpenBCI GUI .txt, BrainFlow CSV), or one recording of a BIDS data "
                   "set: 'bids:ROOT?subject=01&task=T&run=1'")
    p.add_argument("--speed", type=float, help="replay speed (0.25-8; 0: as fast as possible)")
    _add_session_options(p, source=False)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("record", help="record EEG and events only (no model)")
    p.add_argument("--source", required=True, help="source spec (see `dd-live run --help`)")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("--out", type=Path, required=True, help="folder for the session folder")
    p.add_argument("--name", default="recording", help="session name")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("calibrate", help="show images, record the EEG they evoke (training data)")
    p.add_argument("--source", default="synthetic?viewer=1",
                   help="source spec (default: the simulated viewer, synthetic?viewer=1)")
    p.add_argument("--images", required=True, help="a folder of images or a list file")
    p.add_argument("--trials", type=int, help="images to show (default: one block: every "
                   "training image once, every test image --test-repeats times)")
    p.add_argument("--design", choices=("rsvp", "slow"), default="rsvp",
                   help="rsvp: 100 ms image + 100 ms blank; slow: 1 s image + 0.6+/-0.2 s blank")
    p.add_argument("--on", type=float, help="seconds each image is shown (overrides the design)")
    p.add_argument("--blank", type=float, help="seconds of blank after each image")
    p.add_argument("--test-images", type=int, help="images held out for testing (default 20%%)")
    p.add_argument("--test-repeats", type=int, default=4, help="showings of each test image")
    p.add_argument("--break-every", type=int, default=0, help="a break every N trials")
    p.add_argument("--copy-images", action="store_true",
                   help="copy the images into the session folder")
    p.add_argument("--out", type=Path, help="folder for the session folder (default: the "
                   "--config file's [record] root, else runs)")
    p.add_argument("--headless", action="store_true", help="no window (simulated viewer, tests)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="1: real time; 0: simulated time as fast as possible (simulated viewer)")
    p.add_argument("--screen", type=int, help="the screen to present on (default: the primary)")
    p.add_argument("--photodiode", action="store_true",
                   help="a white patch in the bottom-left corner while an image is on (light sensor)")
    p.add_argument("--attention-target", metavar="IMAGE_ID",
                   help="attention task: the viewer presses space when this image shows")
    p.add_argument("--max-trials", type=int, help=argparse.SUPPRESS)  # tests: stop early
    p.add_argument("--seed", type=int, help="randomisation seed (split and order)")
    p.add_argument("--config", type=Path, help="a TOML config file (filter, window, record)")
    p.add_argument("--train", action="store_true",
                   help="then train a personal model on the new session (CPU, a few minutes) "
                   "and print the command that runs live with it (the window offers it too)")
    p.add_argument("--train-model", choices=("ridge", "conv", "dreamdiffusion", "all"),
                   default="all", help="with --train: the decoders to try (default all: the "
                   "best on the validation images is kept; ridge alone takes seconds)")
    p.add_argument("--train-out", type=Path, metavar="DIR",
                   help="with --train: where the model goes, as DIR/model (default: "
                   "<session folder>_personal)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("export-bids", help="write session folders as a BIDS EEG data set")
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="session folders (each one "
                   "becomes a run; the segments of a split session become consecutive runs)")
    p.add_argument("--root", type=Path, required=True,
                   help="the BIDS data set (created, or added to)")
    p.add_argument("--subject", required=True, help="participant label, e.g. 01")
    p.add_argument("--session", help="BIDS session label, e.g. 01 (default: none)")
    p.add_argument("--task", help="task label (default: calibration for calibration "
                   "sessions, else the session's name)")
    p.add_argument("--reference", help="EEGReference, e.g. 'Cz' (default: the board's, "
                   "where known, else n/a)")
    p.add_argument("--line-freq", type=float, metavar="HZ", help="PowerLineFrequency "
                   "(default: as the session measured it)")
    p.add_argument("--overwrite", action="store_true",
                   help="write sessions exported before again (replacing their runs)")
    p.set_defaults(func=cmd_export_bids)

    p = sub.add_parser("stream", help="replay a file as an LSL outlet")
    p.add_argument("file")
    p.add_argument("--name", help="LSL stream name (default: the file name)")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("devices", help="list LSL streams and serial ports of BrainFlow boards")
    p.add_argument("--timeout", type=float, default=1.0, help="LSL resolve time (s)")
    p.add_argument("--all-boards", action="store_true",
                   help="also list every board type BrainFlow knows (connected or not)")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("convert", help="convert a DreamDiffusion checkpoint to dd-live's format, "
                       "or the ImageNet-EEG data file to a session folder to replay")
    p.add_argument("src", help="a DreamDiffusion checkpoint, or eeg_5_95_std.pth")
    p.add_argument("dst", help="a new folder")
    p.add_argument("--subject", type=int, help="(data) only this subject's items (1-6)")
    p.add_argument("--split", choices=("train", "val", "test"),
                   help="(data) only this split's items (with --splits)")
    p.add_argument("--splits", help="(data) the splits file, e.g. "
                   "block_splits_by_image_single.pth (with --subject 4)")
    p.add_argument("--images", help="(data) the ImageNet image folder (<synset>/<name>.JPEG), "
                   "shown beside each generated image in the replay")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("sys-info", help="versions and devices, for bug reports")
    p.set_defaults(func=cmd_sys_info)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args.func(args) or 0)
    except DDLiveError as exc:
        print(f"dd-live: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the user; the traceback with -v
        logger.debug("unexpected error", exc_info=True)
        print(f"dd-live: error: {type(exc).__name__}: {_one_line(exc)} (-v for details)",
              file=sys.stderr)
        return EXIT_ERROR
