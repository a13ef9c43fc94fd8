"""Clean stop: stopping a live session interrupts the image being made before its next UNet step,
then drains; the interrupted image is not recorded; a pause during encoding is not lost.

A real LiveSession (synthetic source, threads, recorder) with the tiny random decoder set to far
more steps than it will run. The UNet is held inside one step while stop() is called, so the
assertions count steps, not seconds.
"""

import threading

import numpy as np

from dd_live.config import AppConfig, GeneratorConfig, RecordConfig, WindowConfig
from dd_live.decoding import EEGDecoder
from dd_live.recording import read_events
from dd_live.session import LiveSession
from dd_live.sources import SyntheticSource
from dd_live.worker import GenerationWorker

LONG_STEPS = 500  # a generation far longer than the test lets it run
STOP_AT_STEP = 3
WAIT = 60.0  # s; generous upper bounds for a loaded CI machine, never a measured quantity


def test_stop_during_a_long_generation_returns_within_one_unet_step(tmp_path):
    decoder = EEGDecoder.from_config(GeneratorConfig(model="tiny", steps=LONG_STEPS, scheduler="ddim"))
    config = AppConfig(window=WindowConfig(length=0.44, hop=0.5),
                       generator=GeneratorConfig(model="tiny", steps=LONG_STEPS, scheduler="ddim"),
                       record=RecordConfig(enabled=True, root=str(tmp_path), name="stop"))
    source = SyntheticSource(8, 250.0, realtime=True, seed=1)
    session = LiveSession(config, source=source, decoder=decoder, threaded=True)
    in_step, release = threading.Event(), threading.Event()
    calls = []

    def hold_one_step(module, args):
        calls.append(1)
        if len(calls) == STOP_AT_STEP:
            in_step.set()
            assert release.wait(WAIT)

    decoder.generator.unet.register_forward_pre_hook(hold_one_step)
    images = []
    session.callbacks.image.append(images.append)
    session.start()
    folder = session.recording_path
    try:
        assert in_step.wait(WAIT), "the first window never reached the UNet"
        stopper = threading.Thread(target=session.stop)
        stopper.start()
        # the stop interrupts the sampler before it waits for the worker
        assert decoder.generator._interrupt.wait(WAIT)
    finally:
        release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive() and session.state == "stopped"
    assert len(calls) == STOP_AT_STEP  # the step in progress finished, no further step started
    assert images == [] and session.n_images == 0
    assert not list((folder / "images").glob("*.png")) if (folder / "images").exists() else True
    events = read_events(folder)
    assert [e["type"] for e in events].count("generation_interrupted") == 1


def test_a_pause_during_encoding_stops_that_window_and_the_next_window_runs():
    decoder = EEGDecoder.from_config(GeneratorConfig(model="tiny", steps=3))
    steps = []
    decoder.generator.unet.register_forward_pre_hook(lambda m, a: steps.append(1))
    pause_while_encoding = [True]

    def pause(module, args):
        if pause_while_encoding[0]:
            decoder.interrupt()  # the GUI's pause, pressed while the encoder runs

    decoder.conditioner.register_forward_pre_hook(pause)
    results = []
    worker = GenerationWorker(lambda eeg: decoder(eeg, seed=0), on_result=lambda job, r: results.append(r),
                              on_take=lambda job: decoder.clear_interrupt())
    window = np.random.default_rng(0).standard_normal((decoder.n_channels, decoder.n_times)).astype(np.float32)
    worker.submit(window)
    assert worker.step()
    assert results[0].interrupted and results[0].images == [] and steps == []
    pause_while_encoding[0] = False
    worker.submit(window)  # a new window after resume: taking it re-arms the sampler
    assert worker.step()
    assert not results[1].interrupted and len(results[1].images) == 1 and len(steps) == 3


def test_worker_stop_with_interrupt_drops_the_waiting_job_before_interrupting():
    order = []
    worker = GenerationWorker(lambda job: order.append(("ran", job)), on_drop=lambda job: order.append(("dropped", job)))
    worker.submit("waiting")
    worker.stop(interrupt=lambda: order.append(("interrupt", None)))
    assert order == [("interrupt", None)] and worker.n_dropped == 1
    assert not worker.step()  # nothing left to run
