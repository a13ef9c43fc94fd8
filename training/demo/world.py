"""The demo world: synthetic EEG states, cut into live windows, and one image family per state.

EEG side: :class:`~dd_live.sources.synthetic.SyntheticSource` (16 channels at 250 Hz, one of
its :data:`~dd_live.sources.synthetic.DEFAULT_STATES`) streamed chunk by chunk through the
app's online filter (:class:`~dd_live.stream.StreamingFilter` with the default
:class:`~dd_live.config.FilterConfig`), cut into windows of the app's default length
(:class:`~dd_live.config.WindowConfig`, 0.44 s) and mapped by
:class:`~dd_live.stream.WindowPreprocessor` to the model's ``(n_channels, n_times)``: exactly
what the live app feeds the model.

Image side: state ``k`` is shape ``k`` of :data:`training.data.synthetic.SHAPES` in colour
``k`` (drawn by :func:`training.data.synthetic.draw_class_image`), turned by a random angle
and laid on a random dark background.
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from dd_live.config import FilterConfig, WindowConfig
from dd_live.errors import ConfigError
from dd_live.sources.synthetic import DEFAULT_STATES, SyntheticSource
from dd_live.stream import StreamingFilter, WindowPreprocessor, design_filter
from dd_live.stream.windows import Window
from training.data.images import image_to_tensor
from training.data.synthetic import BACKGROUND, draw_class_image

STATE_NAMES = tuple(state.name for state in DEFAULT_STATES)
#: Seconds streamed before the first window (the online filter settles in ~0.1 s).
SETTLE_SECONDS = 1.0
#: Seconds per chunk read from the source (the app's acquisition reads small chunks too).
CHUNK_SECONDS = 0.1
#: Images are drawn at this many times their size and shrunk (smooth edges).
SUPERSAMPLE = 2
#: Largest turn of a shape, degrees (bars and square/diamond stay distinguishable).
MAX_TURN = 20.0
#: Backgrounds are dark: each channel uniform in this range (shape colours are bright).
BACKGROUND_RANGE = (8, 64)


@dataclass(frozen=True)
class DemoWorld:
    """What the demo model sees and draws.

    ``n_channels`` / ``sfreq``: the synthetic source (the app's default). ``n_times``: the
    model's samples per window (the ``window_length`` seconds of the source resampled).
    ``hop``: seconds between two training windows cut from one stream.
    """

    n_channels: int = 16
    sfreq: float = 250.0
    window_length: float = WindowConfig().length
    n_times: int = 128
    image_size: int = 64
    hop: float = 0.13

    def __post_init__(self) -> None:
        if self.n_channels < 1 or self.n_times < 8 or self.image_size % 8:
            raise ConfigError(
                f"DemoWorld needs n_channels >= 1, n_times >= 8 and image_size a multiple of 8, got "
                f"{self.n_channels}, {self.n_times}, {self.image_size}"
            )
        if not self.hop > 0 and self.window_length > 0:
            raise ConfigError(f"DemoWorld: hop and window_length must be > 0 s, got {self.hop}, {self.window_length}")

    @property
    def n_states(self) -> int:
        return len(STATE_NAMES)

    @property
    def ch_names(self) -> tuple[str, ...]:
        """The model's channel names in order: the synthetic source's, whose windows (rows
        in the source's order, see :meth:`windows`) the model is trained on."""
        return SyntheticSource(self.n_channels, self.sfreq).info.ch_names

    @property
    def window_times(self) -> int:
        """Source samples per window (0.44 s at 250 Hz: 110)."""
        return int(round(self.window_length * self.sfreq))

    def stream(self, state: int | None, seed: int, seconds: float) -> tuple[np.ndarray, SyntheticSource]:
        """``(n_channels, n)`` filtered volts of one synthetic stream in ``state`` (None: none).

        Read chunk by chunk from a non-realtime :class:`SyntheticSource` and filtered online,
        as the acquisition thread does; the first :data:`SETTLE_SECONDS` are dropped.
        """
        name = None if state is None else STATE_NAMES[state]
        source = SyntheticSource(self.n_channels, self.sfreq, state=name, seed=seed,
                                 chunk_duration=CHUNK_SECONDS, realtime=False)
        filt = FilterConfig()
        # the demo model was built with a fixed 50 Hz notch (the app's default is now "auto")
        sos = design_filter(self.sfreq, l_freq=filt.l_freq, h_freq=filt.h_freq, notch=50.0,
                            order=filt.order)
        online = StreamingFilter(sos, self.n_channels)
        n_total = int(round((seconds + SETTLE_SECONDS) * self.sfreq))
        chunks, n_read = [], 0
        with source:
            while n_read < n_total:
                data, _ = source.read()  # [C, chunk]
                chunks.append(online(data))
                n_read += data.shape[1]
        return np.concatenate(chunks, axis=1)[:, int(SETTLE_SECONDS * self.sfreq) : n_total], source

    def windows(self, state: int | None, seed: int, n_windows: int) -> np.ndarray:
        """``[n_windows, n_channels, n_times]`` float32 model inputs from one stream.

        Windows start every ``hop`` seconds (so they meet the evoked response at every phase)
        and go through the app's :class:`WindowPreprocessor`.
        """
        n_hop = max(1, int(round(self.hop * self.sfreq)))
        seconds = ((n_windows - 1) * n_hop + self.window_times) / self.sfreq + 1 / self.sfreq
        data, source = self.stream(state, seed, seconds)
        prep = WindowPreprocessor(source.info, n_channels=self.n_channels, n_times=self.n_times)
        out = np.empty((n_windows, self.n_channels, self.n_times), np.float32)
        for i in range(n_windows):
            start = i * n_hop
            stop = start + self.window_times
            window = Window(start, stop, data[:, start:stop], np.arange(start, stop) / self.sfreq,
                            self.sfreq, "periodic")
            out[i] = prep(window)
        return out

    def state_windows(self, seeds: range | list[int], per_stream: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows of every state from one stream per (state, seed).

        Returns ``eeg [n_states * len(seeds) * per_stream, n_channels, n_times]`` float32 and
        ``labels`` int64 of the same length.
        """
        eeg, labels = [], []
        for state in range(self.n_states):
            for seed in seeds:
                eeg.append(self.windows(state, seed * 101 + state, per_stream))
                labels += [state] * per_stream
        return np.concatenate(eeg), np.asarray(labels, np.int64)

    def draw(self, state: int, rng: np.random.Generator) -> Image.Image:
        """An RGB ``image_size`` px image of ``state``: its shape and colour, turned, on a dark background."""
        size = self.image_size * SUPERSAMPLE
        drawn = np.asarray(draw_class_image(state, size, rng))  # [S, S, 3] on BACKGROUND
        mask = Image.fromarray(((drawn != BACKGROUND).any(axis=2) * 255).astype(np.uint8))
        angle = float(rng.uniform(-MAX_TURN, MAX_TURN))
        shape = Image.fromarray(drawn).rotate(angle, resample=Image.Resampling.BILINEAR)
        mask = mask.rotate(angle, resample=Image.Resampling.BILINEAR)
        low, high = BACKGROUND_RANGE
        background = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(low, high, size=3)))
        background.paste(shape, (0, 0), mask)
        return background.resize((self.image_size, self.image_size), Image.Resampling.BOX)

    def image_bank(self, per_state: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
        """``images [n_states * per_state, 3, S, S]`` in [-1, 1] and their ``labels``."""
        images, labels = [], []
        for state in range(self.n_states):
            for i in range(per_state):
                rng = np.random.default_rng([seed, state, i])
                images.append(image_to_tensor(self.draw(state, rng), self.image_size))
                labels.append(state)
        return torch.stack(images), np.asarray(labels, np.int64)


class DemoPairs(torch.utils.data.Dataset):
    """Live-like EEG windows paired with an image of the same state.

    Window ``i`` of state ``k`` is paired with image ``i mod per_state`` of state ``k`` in
    the bank. Items as :class:`training.data.SyntheticPairs`: ``{"eeg": [C, T] float32,
    "image": [3, S, S] in [-1, 1], "label": int, "image_id": int}``.
    """

    def __init__(self, eeg: np.ndarray, labels: np.ndarray, images: torch.Tensor, image_labels: np.ndarray) -> None:
        self.eeg, self.labels, self.images = torch.from_numpy(eeg), labels, images
        by_state = [np.flatnonzero(image_labels == k) for k in range(int(image_labels.max()) + 1)]
        counts = np.zeros(len(by_state), np.int64)
        self.image_ids = np.empty(len(labels), np.int64)
        for i, label in enumerate(labels):
            pool = by_state[label]
            self.image_ids[i] = pool[counts[label] % len(pool)]
            counts[label] += 1

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        image_id = int(self.image_ids[index])
        return {"eeg": self.eeg[index], "image": self.images[image_id], "label": int(self.labels[index]),
                "image_id": image_id}

    def __repr__(self) -> str:
        return f"<DemoPairs | {len(self)} windows of {tuple(self.eeg.shape[1:])}, {len(self.images)} images>"
