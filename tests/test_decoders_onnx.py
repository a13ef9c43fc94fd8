"""The personal route's torch decoders on ONNX Runtime (dd_live.decoders.onnx_decoder).

``python -m training.decoder`` exports a conv or DreamDiffusion decoder to
``decoder/model.onnx`` beside its weights (the graph reads them in place); ``EmbeddingModel``
runs that graph when ``[generator] runtime`` resolves to ONNX. Checked on the real windows of a
real calibration session of the simulated viewer (the fixture of test_embedding_live, recorded
once for this module): the graph's vectors are the torch module's, a live ``dd-live run`` of a
conv model never imports torch, and ``runtime = "onnx"`` without the export names the command
that makes it. Nothing is mocked: the live runs are subprocesses of the real command line and
the real window (offscreen) whose ``sys.modules`` is read at the end.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import test_embedding_live
from test_onnx_runtime import HEADLESS_PROBE, WINDOW_PROBE, _run_probe

from dd_live.cli import main as dd_live_main
from dd_live.decoders import EmbeddingModel
from dd_live.errors import ConfigError
from training import decoder as train_decoder
from training.data.calibration import CalibrationPairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: the simulated viewer's calibration session, recorded as test_embedding_live records it
calibration = test_embedding_live.calibration


def _train(kind: str, calibration, out):
    return train_decoder.main(["--data", str(calibration), "--output-dir", str(out), "--model", kind,
                               "--epochs", "1"])


@pytest.fixture(scope="module")
def conv_model(calibration, tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train("conv", calibration, tmp_path_factory.mktemp("conv"))
    finally:
        torch.set_num_threads(threads)


def _windows(model: EmbeddingModel, calibration) -> np.ndarray:
    """The session's test windows as the live app cuts them: ``[n, n_channels, n_times]``."""
    return CalibrationPairs(str(calibration), "test", model.n_channels, model.n_times).eeg


def _agree(folder, calibration) -> None:
    on_onnx = EmbeddingModel.load(folder, runtime="onnx")
    on_torch = EmbeddingModel.load(folder, runtime="torch")
    assert (on_onnx.runtime, on_torch.runtime) == ("onnx", "torch")
    assert EmbeddingModel.load(folder).runtime == "onnx"  # auto: the export is there
    windows = _windows(on_torch, calibration)
    assert len(windows) >= 20
    got = np.stack([on_onnx.encode(w) for w in windows])  # [n, dim]
    expected = np.stack([on_torch.encode(w) for w in windows])
    assert got.dtype == np.float32 and got.shape == expected.shape == (len(windows), 768)
    cosine = (got * expected).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosine.min() > 0.9999, cosine.min()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    # the same nearest gallery images
    for g, e in zip(got[:5], expected[:5], strict=True):
        assert [p for p, _ in on_onnx.gallery.nearest(g, 4)] == \
            [p for p, _ in on_torch.gallery.nearest(e, 4)]


def test_the_conv_decoder_is_exported_beside_its_weights_and_gives_the_torch_vectors(conv_model, calibration):
    graph = conv_model / "decoder" / "model.onnx"
    weights = conv_model / "decoder" / "model.safetensors"
    assert graph.is_file() and graph.stat().st_size < weights.stat().st_size / 10
    proto = onnx.load(str(graph), load_external_data=False)
    locations = {e.value for t in proto.graph.initializer
                 if t.data_location == onnx.TensorProto.EXTERNAL for e in t.external_data
                 if e.key == "location"}
    assert locations == {"model.safetensors"}  # the weights read in place, not copied
    _agree(conv_model, calibration)


def test_the_dreamdiffusion_decoder_is_exported_and_gives_the_torch_vectors(calibration, tmp_path):
    folder = _train("dreamdiffusion", calibration, tmp_path)
    assert (folder / "decoder" / "model.onnx").is_file()
    _agree(folder, calibration)


def test_a_live_run_of_a_conv_model_on_onnx_never_imports_torch(conv_model):
    out = _run_probe(HEADLESS_PROBE, "run", "--headless", "--source", "synthetic?viewer=1",
                     "--model", str(conv_model), "--duration", "3")
    (heavy,) = [line for line in out.splitlines() if line.startswith("HEAVY")]
    assert heavy == "HEAVY", heavy
    summary = [line for line in out.splitlines() if " images, " in line and "samples," in line][-1]
    assert int(summary.split(" images")[0].split()[-1]) > 0, summary  # it showed pictures


def test_the_window_running_a_conv_model_on_onnx_never_imports_torch(conv_model):
    out = _run_probe(WINDOW_PROBE, "run", "--source", "synthetic?viewer=1", "--model", str(conv_model))
    lines = dict(line.partition(" ")[::2] for line in out.splitlines()
                 if line.startswith(("IMAGES", "HEAVY")))
    assert int(lines["IMAGES"]) >= 2, out[-2000:]
    assert lines["HEAVY"] == "", lines


def test_runtime_onnx_without_the_export_says_how_to_export_it(conv_model, calibration, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(conv_model, folder, ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(ConfigError, match="python -m training.decoder --export-onnx") as error:
        EmbeddingModel.load(folder, runtime="onnx")
    assert "\n" not in str(error.value) and str(folder) in str(error.value)
    rc = dd_live_main(["run", "--headless", "--source", "synthetic?viewer=1", "--model", str(folder),
                       "--runtime", "onnx", "--duration", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "training.decoder --export-onnx" in err[0], err
    assert EmbeddingModel.load(folder).runtime == "torch"  # auto: quietly torch
    # the command the message gives makes the export, and the folder then runs on ONNX
    assert train_decoder.main(["--export-onnx", str(folder)]) == folder
    _agree(folder, calibration)
