"""The ONNX Runtime CPU path of the demo model (dd_live.generate.onnx_runtime,
dd_live.decoding_onnx): the same images and verdicts as the torch path, no torch on the demo's
path, ``[generator] runtime`` and its errors.

The parity checks run the shipped export (``dd_live/assets/demo``: the graphs beside the torch
weights) against the torch path loaded as the app loads it. The torch path's EEG encoder runs in
bfloat16 on CPUs with native bf16 arithmetic (``dd_live.decoding.conditioner_dtype``), which
changes the context by ~1e-2 and so the images by more than a rounding step; the parity test
therefore builds the torch path as it runs on every other CPU (float32), by making the CPU
probe say "no bf16" (the one thing replaced here; said again at the test).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dd_live.assets import demo_model_dir
from dd_live.config import GeneratorConfig
from dd_live.decoding import EEGDecoder
from dd_live.decoding_onnx import OnnxEEGDecoder, choose_runtime
from dd_live.errors import ConfigError
from dd_live.generate.onnx_runtime import DPMSolverMultistep, torch_randn
from training.demo.build import DEMO_SCHEDULER, DEMO_STEPS, HELD_OUT_SEED
from training.demo.world import STATE_NAMES, DemoWorld

ROOT = Path(__file__).resolve().parents[1]
DEMO = demo_model_dir()
#: the largest pixel difference the two runtimes may show (of 255)
PIXEL_TOLERANCE = 2
#: stream seeds no build stage or other test uses
TEST_SEED = 5 * HELD_OUT_SEED


def _config(**changes) -> GeneratorConfig:
    return GeneratorConfig(**{"model": str(DEMO), "scheduler": DEMO_SCHEDULER,
                              "steps": DEMO_STEPS, "threads": 1, **changes})


@pytest.mark.parametrize("shape", [(1, 4, 8, 8), (1, 4, 9, 7), (3, 16)])
def test_the_numpy_noise_is_torchs_cpu_generator(shape):
    import torch

    for seed in (0, 1, 2022, 10_000_123, 2**32 + 7):
        expected = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed)).numpy()
        np.testing.assert_allclose(torch_randn(seed, shape), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
@pytest.mark.parametrize("steps", [1, 2, DEMO_STEPS, 12])
def test_the_numpy_sampler_steps_as_diffusers_dpm_solver(spacing, steps):
    """The demo's scheduler config (and its other spacings) through both: the same timesteps,
    the same samples after every step on the same model outputs."""
    import torch

    from dd_live.generate.schedulers import make_scheduler

    config = {**json.loads((DEMO / "scheduler" / "scheduler_config.json").read_text()),
              "timestep_spacing": spacing}
    reference = make_scheduler("dpm++", config)
    reference.set_timesteps(steps, device="cpu")
    ours = DPMSolverMultistep(config, steps)
    assert ours.timesteps.tolist() == reference.timesteps.tolist()
    rng = np.random.default_rng(steps)
    sample = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    expected = torch.from_numpy(sample.copy())
    for t in reference.timesteps:
        noise = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
        expected = reference.step(torch.from_numpy(noise), t, expected, return_dict=False)[0]
        sample = ours.step(noise, sample)
        scale = max(1.0, float(expected.abs().max()))  # float32 rounding of the step's scalars
        np.testing.assert_allclose(sample, expected.numpy(), rtol=0, atol=2e-6 * scale)


@pytest.fixture(scope="module")
def decoders():
    """(ONNX decoder, torch decoder) of the demo model, as `dd-live demo` builds them."""
    import torch

    import dd_live.decoding

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    probe = dd_live.decoding.cpu_has_native_bf16
    # the torch path as it runs on CPUs without native bf16 (see the module docstring)
    dd_live.decoding.cpu_has_native_bf16 = lambda *args: False
    try:
        torch_decoder = EEGDecoder.from_config(_config(runtime="torch"))
    finally:
        dd_live.decoding.cpu_has_native_bf16 = probe
    assert torch_decoder.dtype == torch.float32
    yield EEGDecoder.from_config(_config(runtime="onnx")), torch_decoder
    torch.set_num_threads(threads)


def test_onnx_and_torch_make_the_same_images_and_the_same_verdicts(decoders):
    """Held-out windows of every thought, one seed each: the images agree within 2/255 and
    the demo classifier, on ONNX and on torch, names the same thought for each."""
    from dd_live.verdict import ThoughtJudge

    onnx_decoder, torch_decoder = decoders
    assert isinstance(onnx_decoder, OnnxEEGDecoder) and not isinstance(torch_decoder,
                                                                       OnnxEEGDecoder)
    eeg, labels = DemoWorld().state_windows(range(TEST_SEED, TEST_SEED + 1), 2)  # 2 per thought
    onnx_images, torch_images, worst = [], [], 0
    for k, window in enumerate(eeg):
        a, b = onnx_decoder(window, seed=TEST_SEED + k), torch_decoder(window, seed=TEST_SEED + k)
        assert a.timings["steps"] == b.timings["steps"] == DEMO_STEPS
        np.testing.assert_allclose(a.clip, b.clip, rtol=0, atol=1e-4)
        pixels_a, pixels_b = (np.asarray(r.images[0], np.int16) for r in (a, b))
        worst = max(worst, int(np.abs(pixels_a - pixels_b).max()))
        onnx_images.append(a.images[0])
        torch_images.append(b.images[0])
    assert worst <= PIXEL_TOLERANCE, f"the runtimes' images differ by {worst}/255"
    onnx_judge = ThoughtJudge.from_model_folder(DEMO, 250.0)
    torch_judge = ThoughtJudge.from_model_folder(DEMO, 250.0, runtime="torch")
    assert type(onnx_judge.classifier).__name__ == "OnnxStateClassifier"
    assert type(torch_judge.classifier).__name__ == "StateClassifier"
    onnx_verdicts = onnx_judge.classifier.predict(onnx_images)
    torch_verdicts = torch_judge.classifier.predict(torch_images)
    assert onnx_verdicts.tolist() == torch_verdicts.tolist()
    # and they are verdicts on pictures of the thoughts, not on noise
    assert np.mean(onnx_verdicts == labels) >= 0.75 and len(set(onnx_verdicts)) == len(STATE_NAMES)


def test_the_onnx_sampler_stops_between_steps_and_runs_again_after_clearing(decoders):
    onnx_decoder, _ = decoders
    window = DemoWorld().windows(state=3, seed=TEST_SEED, n_windows=1)[0]
    steps = []

    def stop_after_two(i):
        steps.append(i)
        if i == 1:
            onnx_decoder.interrupt()

    generator = onnx_decoder.generator
    context, _ = onnx_decoder.conditioner(window)
    result = generator(context, seed=1, on_step=stop_after_two)
    assert result.interrupted and result.images == [] and steps == [0, 1]
    assert result.timings["steps"] == 2
    assert onnx_decoder(window, seed=1).interrupted  # stays stopped until cleared
    onnx_decoder.clear_interrupt()
    again = onnx_decoder(window, seed=1)
    assert not again.interrupted and again.images[0].size == (64, 64)


def test_threads_come_from_the_generator_setting():
    decoder = EEGDecoder.from_config(_config(runtime="onnx", threads=2))
    for session in (decoder.conditioner.session, decoder.generator.unet,
                    decoder.generator.vae_decoder):
        assert session.get_session_options().intra_op_num_threads == 2


def test_auto_picks_onnx_on_the_cpu_and_torch_where_a_setting_needs_it(monkeypatch):
    import dd_live.decoding_onnx

    # no GPU here; whether a CUDA driver would be present is the one thing replaced
    monkeypatch.setattr(dd_live.decoding_onnx, "_cuda_present", lambda: False)
    assert choose_runtime(_config()) == "onnx"
    assert choose_runtime(_config(runtime="torch")) == "torch"
    for needs_torch in ({"guidance_scale": 3.0}, {"scheduler": "ddim"}, {"device": "cuda"},
                        {"model": "tiny"}, {"image_size": 128}):
        assert choose_runtime(_config(**needs_torch)) == "torch", needs_torch
    with pytest.raises(ConfigError, match="guidance_scale = 3"):
        choose_runtime(_config(runtime="onnx", guidance_scale=3.0))
    monkeypatch.setattr(dd_live.decoding_onnx, "_cuda_present", lambda: True)
    assert choose_runtime(_config()) == "torch"  # auto: the CUDA path


def test_runtime_onnx_for_a_model_without_an_export_says_how_to_export_it(tmp_path, capsys):
    """A model folder with its torch weights only: one line naming the export command, rc 2
    from the command line; "auto" quietly runs it on torch."""
    from dd_live.cli import main

    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("*.onnx", "onnx.json"))
    with pytest.raises(ConfigError, match="python -m training.demo.export_onnx") as error:
        EEGDecoder.from_config(_config(model=str(folder), runtime="onnx"))
    assert "\n" not in str(error.value)
    rc = main(["demo", "--headless", "--model", str(folder), "--runtime", "onnx",
               "--duration", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "training.demo.export_onnx" in err[0], err
    assert choose_runtime(_config(model=str(folder))) == "torch"


HEADLESS_PROBE = textwrap.dedent("""
    import sys
    from dd_live.cli import main
    rc = main(sys.argv[1:])
    heavy = [name for name in ("torch", "diffusers") if name in sys.modules]
    print("HEAVY", *heavy)
    sys.exit(rc)
""")

WINDOW_PROBE = textwrap.dedent("""
    import sys, time
    from PySide6 import QtCore, QtWidgets
    from dd_live.cli import _config_from_args, build_parser
    from dd_live.gui.main_window import MainWindow

    app = QtWidgets.QApplication(sys.argv[:1])
    window = MainWindow(_config_from_args(build_parser().parse_args(sys.argv[1:])), dialogs=False)
    window.show()
    window.start_session()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        app.processEvents()
        session = window.session
        if session is not None and getattr(session, "n_images", 0) >= 2:
            break
        time.sleep(0.01)
    images = getattr(window.session, "n_images", 0)
    window.closed.connect(app.quit)
    window.close()
    app.exec()
    heavy = [name for name in ("torch", "diffusers") if name in sys.modules]
    print("IMAGES", images)
    print("HEAVY", *heavy)
""")


def _run_probe(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_a_headless_demo_on_onnx_never_imports_torch_or_diffusers():
    out = _run_probe(HEADLESS_PROBE, "demo", "--headless", "--runtime", "onnx", "--duration", "3")
    (heavy,) = [line for line in out.splitlines() if line.startswith("HEAVY")]
    assert heavy == "HEAVY", heavy
    summary = [line for line in out.splitlines() if " images, " in line and "samples," in line][-1]
    assert int(summary.split(" images")[0].split()[-1]) > 0, summary  # it made images


def test_the_demo_window_on_onnx_never_imports_torch_or_diffusers():
    out = _run_probe(WINDOW_PROBE, "demo", "--runtime", "onnx")
    lines = dict(line.partition(" ")[::2] for line in out.splitlines()
                 if line.startswith(("IMAGES", "HEAVY")))
    assert int(lines["IMAGES"]) >= 2, out[-2000:]
    assert lines["HEAVY"] == "", lines


def test_the_exporter_writes_a_graph_that_reads_the_torch_weights_in_place(tmp_path):
    """The demo classifier exported again into a copy of its folder: the graph points at the
    safetensors file's bytes instead of copying them, and computes the torch module's logits."""
    import onnx
    import torch

    from dd_live.verdict import load_classifier
    from training.demo.export_onnx import _export

    folder = tmp_path / "classifier"
    shutil.copytree(DEMO / "classifier", folder, ignore=shutil.ignore_patterns("*.onnx"))
    classifier = load_classifier(folder)
    path = _export(classifier, (torch.zeros(1, 3, 64, 64),), folder / "model.onnx", ["images"],
                   ["logits"], folder / "model.safetensors")
    weights = (folder / "model.safetensors").stat().st_size
    assert path.stat().st_size < weights / 4  # the operators, not a second copy of the weights
    model = onnx.load(str(path), load_external_data=False)
    external = [t for t in model.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    assert {e.value for t in external for e in t.external_data if e.key == "location"} == \
        {"model.safetensors"}
    from dd_live.generate.onnx_runtime import make_session

    images = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = classifier(images).numpy()
    got = make_session(path, 1).run(None, {"images": images.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
