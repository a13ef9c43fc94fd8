"""The demo model's measured figures, shared by the build (model card) and the tests.

- :func:`embedding_accuracy`: nearest class centroid on the encoder's mean token, centroids
  from one set of streams, accuracy on streams of other seeds;
- :func:`image_accuracy`: the state classifier's verdict on images generated from held-out
  windows through the app's :class:`~dd_live.decoding.EEGDecoder`;
- :func:`images_per_second`: end-to-end decoding speed (encode + sample + decode);
- :func:`live_accuracy`: what ``dd-live demo`` shows: a real LiveSession with the settings the
  command line builds, judged live by :class:`dd_live.verdict.ThoughtJudge`;
- :func:`state_grid`: images side by side, one row per state.
"""

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dd_live.model import EEGConditioner


@torch.inference_mode()
def embeddings(conditioner: EEGConditioner, eeg: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``[N, embed_dim]``: the encoder's tokens of each window ``eeg [N, C, T]``, averaged."""
    return np.concatenate([
        conditioner.encoder(torch.from_numpy(eeg[i : i + batch_size])).mean(dim=1).numpy()
        for i in range(0, len(eeg), batch_size)
    ])


def embedding_accuracy(conditioner: EEGConditioner, fit: tuple[np.ndarray, np.ndarray],
                       test: tuple[np.ndarray, np.ndarray]) -> float:
    """Share of ``test`` windows whose embedding is nearest (cosine) to their own state's centroid.

    ``fit`` / ``test``: ``(eeg [N, C, T], labels [N])``; centroids come from ``fit`` only.
    """
    fit_x, test_x = embeddings(conditioner, fit[0]), embeddings(conditioner, test[0])
    centroids = np.stack([fit_x[fit[1] == k].mean(0) for k in range(int(fit[1].max()) + 1)])  # [K, D]
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    test_x = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    return float(((test_x @ centroids.T).argmax(1) == test[1]).mean())


def generate(decoder, eeg: np.ndarray, seed: int = 0) -> list[Image.Image]:
    """One image per window ``eeg [N, C, T]`` (window ``i`` sampled with seed ``seed + i``)."""
    return [decoder(window, seed=seed + i).images[0] for i, window in enumerate(eeg)]


def image_accuracy(classifier, images: list[Image.Image], labels: np.ndarray) -> float:
    """Share of ``images`` the state classifier names as their intended state ``labels``."""
    return float((classifier.predict(images) == labels).mean())


def images_per_second(decoder, eeg: np.ndarray, n_images: int = 20) -> float:
    """Images per second through ``decoder`` (after one warm-up call), one window at a time."""
    decoder(eeg[0], seed=0)
    start = time.perf_counter()
    for i in range(n_images):
        decoder(eeg[i % len(eeg)], seed=i)
    return n_images / (time.perf_counter() - start)


def state_grid(images: list[Image.Image], labels: np.ndarray, per_row: int) -> Image.Image:
    """A grid with one row per state: the first ``per_row`` images of each label."""
    size = images[0].size
    n_states = int(labels.max()) + 1
    grid = Image.new("RGB", (size[0] * per_row, size[1] * n_states), "white")
    for state in range(n_states):
        for column, index in enumerate(np.flatnonzero(labels == state)[:per_row]):
            grid.paste(images[index], (column * size[0], state * size[1]))
    return grid


def live_accuracy(model: str | Path, source_seed: int, per_state: int = 10,
                  signal_between_images: float = 0.1) -> dict:
    """The classifier's verdict on the images ``dd-live demo --model MODEL`` makes.

    The settings are those the command line builds (defaults + the folder's ``dd_live.json``:
    the latest-window trigger, a seed per window); a real :class:`~dd_live.session.LiveSession`
    on the synthetic headset (seed ``source_seed``) goes through every thought, and
    :class:`~dd_live.verdict.ThoughtJudge` judges each image whose window lies in one thought.
    Only the clock differs from the app: the source is not paced by the wall clock and the
    session is stepped; between two images ``signal_between_images`` seconds of signal pass
    (about one generation on a 2-core CPU: the spacing the latest trigger gives live).

    Returns ``{"accuracy", "per_state": {thought: share}, "n_judged", "n_images",
    "n_dropped"}``.
    """
    from dd_live.cli import _config_from_args, build_parser
    from dd_live.session import LiveSession
    from dd_live.sources import open_source
    from dd_live.verdict import SETTLE_SECONDS, ThoughtJudge

    config = _config_from_args(build_parser().parse_args(["demo", "--model", str(model)]))
    source = open_source(config.source.spec, realtime=False, seed=source_seed)
    session = LiveSession(config, source=source, threaded=False)
    judge = ThoughtJudge.from_model_folder(config.generator.model, source.info.sfreq)
    verdicts = []
    session.callbacks.event.append(judge.on_event)
    session.callbacks.image.append(lambda result: verdicts.append(judge.judge(result)))
    session.start()
    try:
        for state in judge.classifier.class_names:
            source.set_state(state)
            session.pause_generation()  # windows that straddle the change are not judged
            session.run_for(config.window.length + SETTLE_SECONDS)
            session.resume_generation()
            n_judged = sum(v is not None for v in verdicts)
            while sum(v is not None for v in verdicts) < n_judged + per_state:
                session.pause_generation()  # the signal of one generation passes ...
                session.run_for(signal_between_images)
                session.resume_generation()
                n_images = session.n_images
                while session.n_images == n_images:  # ... then the newest window is drawn
                    session.step()
    finally:
        session.stop()
    judged = [v for v in verdicts if v is not None]
    return {
        "accuracy": float(np.mean([v.match for v in judged])),
        "per_state": {state: float(np.mean([v.match for v in judged if v.intended == state]))
                      for state in judge.classifier.class_names},
        "n_judged": len(judged), "n_images": session.n_images,
        "n_dropped": session.stats().n_dropped,
    }
