"""Training data: the reference's ImageNet-EEG files, the MNE-read pretraining corpus, synthetic sets.

Every file is written here in the reference layout (small), then read back by the loaders.
"""

import mne
import numpy as np
import pytest
import torch
from PIL import Image

from dd_live.errors import ConfigError, FileFormatError
from training.data import EEGCorpus, ImageNetEEG, SyntheticCorpus, SyntheticPairs, build_corpus
from training.data.corpus import Preprocessing

N_CHANNELS = 4
SYNSETS = ["n02389026", "n03888257"]


@pytest.fixture
def imagenet_eeg(tmp_path):
    """A tiny ImageNet-EEG: 2 classes x 3 images, subjects 1 and 4, 1 kHz trials of 500 samples."""
    names = [f"{SYNSETS[k]}_{100 + i}" for k in range(2) for i in range(3)]
    rng = np.random.default_rng(0)
    records = []
    for subject in (1, 4):
        for image in range(len(names)):
            eeg = torch.from_numpy(rng.standard_normal((N_CHANNELS, 500)).astype(np.float32))
            eeg[0] = torch.arange(500, dtype=torch.float32)  # a ramp: crop + resample are checkable
            records.append({"eeg": eeg, "image": image, "label": image // 3, "subject": subject})
    records.append({"eeg": torch.zeros(N_CHANNELS, 300), "image": 0, "label": 0, "subject": 4})  # too short
    data = tmp_path / "eeg_5_95_std.pth"
    torch.save({"dataset": records, "labels": SYNSETS, "images": names}, data)
    splits = tmp_path / "block_splits_by_image_single.pth"
    torch.save({"splits": [{"train": [0, 1, 2, 3, 6], "val": [4], "test": [5]}]}, splits)
    root = tmp_path / "imagenet"
    for k, name in enumerate(names):
        (root / name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (40 * k, 200, 10)).save(root / name.split("_")[0] / f"{name}.JPEG")
    return data, splits, root


def test_imagenet_eeg_reads_the_reference_layout(imagenet_eeg):
    data, splits, root = imagenet_eeg
    train = ImageNetEEG(data, splits, "train", subject=4, image_root=root, image_size=16)
    assert len(train) == 4  # index 6 is the 300-sample trial: dropped, as the reference does
    item = train[1]
    assert item["eeg"].shape == (N_CHANNELS, 512) and item["eeg"].dtype == torch.float32
    # samples 20..459 of the ramp, stretched linearly with both ends kept
    np.testing.assert_allclose(item["eeg"][0].numpy(), np.linspace(20, 459, 512), rtol=1e-5)
    assert item["image"].shape == (3, 16, 16) and item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["image_id"] == 1 and item["label"] == 0
    assert train.image_path(4).name == "n03888257_101.JPEG"
    test = ImageNetEEG(data, splits, "test", subject=4)  # EEG only, no image root
    assert test[0]["image_id"] == 5 and "image" not in test[0]
    assert "ImageNetEEG | test: 1 items" in repr(test)


def test_imagenet_eeg_errors_name_the_file(imagenet_eeg, tmp_path):
    data, splits, root = imagenet_eeg
    with pytest.raises(FileFormatError, match="missing.pth does not exist"):
        ImageNetEEG(tmp_path / "missing.pth", splits)
    bad = tmp_path / "bad.pth"
    torch.save({"dataset": [], "labels": []}, bad)
    with pytest.raises(FileFormatError, match=r"bad.pth lacks keys \['images'\]"):
        ImageNetEEG(bad, splits)
    big_split = tmp_path / "split_all.pth"
    torch.save({"splits": [{"train": [0, 99], "val": [], "test": []}]}, big_split)
    with pytest.raises(FileFormatError, match="split_all.pth: 1 train indices"):
        ImageNetEEG(data, big_split, subject=4)
    pickled = tmp_path / "pickled.pth"
    torch.save({"splits": [{"train": [0], "val": [], "test": []}], "extra": Preprocessing()}, pickled)
    with pytest.raises(FileFormatError, match="weights_only=True"):
        ImageNetEEG(data, pickled)
    (root / SYNSETS[0] / f"{SYNSETS[0]}_100.JPEG").unlink()
    with pytest.raises(FileFormatError, match="n02389026_100.JPEG does not exist"):
        ImageNetEEG(data, splits, image_root=root, subject=4)[0]
    with pytest.raises(ConfigError, match="split must be one of"):
        ImageNetEEG(data, splits, "validation")


def _write_recordings(folder, sfreq=256.0):
    """A 3-channel FIF (10 s, 2 Hz + 20 Hz), a 2-channel EDF (3 s) and a FIF shorter than a window."""
    folder.mkdir()
    t = np.arange(int(10 * sfreq)) / sfreq
    slow_fast = np.sin(2 * np.pi * 2 * t) + 0.5 * np.sin(2 * np.pi * 20 * t)
    data = np.stack([slow_fast, 2 * slow_fast, -slow_fast]) * 1e-5
    info = mne.create_info(["C3", "C4", "Pz"], sfreq, "eeg")
    mne.io.RawArray(data, info, verbose="error").save(folder / "a_raw.fif", verbose="error")
    noise = np.random.default_rng(1).standard_normal((2, int(3 * sfreq))) * 1e-5
    edf = mne.io.RawArray(noise, mne.create_info(["O1", "O2"], sfreq, "eeg"), verbose="error")
    mne.export.export_raw(folder / "b.edf", edf, verbose="error")
    short = mne.io.RawArray(noise[:, :26], mne.create_info(["O1", "O2"], sfreq, "eeg"), verbose="error")
    short.save(folder / "c_short_raw.fif", verbose="error")


def test_corpus_preprocesses_caches_and_reuses(tmp_path):
    _write_recordings(tmp_path / "eeg")
    prep = Preprocessing(n_channels=8, n_times=64)
    corpus = build_corpus([tmp_path / "eeg"], tmp_path / "cache", prep)
    assert len(corpus) == 40 + 12 + 1  # 10 s and 3 s at 256 Hz in 64-sample windows + the short one padded
    window = corpus[3]["eeg"].numpy()
    assert window.shape == (8, 64)
    np.testing.assert_allclose(window[3], window[0])  # channels replicated to reach 8
    np.testing.assert_allclose(window[1], window[0], atol=1e-5)  # standardised per channel
    spectrum = np.abs(np.fft.rfft(np.concatenate([corpus[i]["eeg"][0].numpy() for i in range(5, 37)])))
    freqs = np.fft.rfftfreq(32 * 64, 1 / 256)
    assert spectrum[np.argmin(abs(freqs - 2))] < 0.05 * spectrum[np.argmin(abs(freqs - 20))]  # 5-95 Hz band-pass
    assert np.all(corpus[52]["eeg"].numpy()[:, 26:] == 0) and corpus[52]["eeg"][:, 0].any()  # padded
    part = tmp_path / "cache" / "00000.npy"
    written = part.stat().st_mtime_ns
    again = build_corpus([tmp_path / "eeg"], tmp_path / "cache", prep)
    assert part.stat().st_mtime_ns == written and len(again) == len(corpus)  # reused, not rebuilt
    assert isinstance(EEGCorpus(tmp_path / "cache").arrays[0], np.memmap)
    assert "53 windows of 8 x 64 from 3 sources" in repr(again)


def test_corpus_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match="holds no EEG file"):
        build_corpus([tmp_path / "empty"], tmp_path / "cache")
    garbled = tmp_path / "garbled.edf"
    garbled.write_bytes(b"not an edf at all")
    with pytest.raises(FileFormatError, match="garbled.edf could not be read as EEG by MNE"):
        build_corpus([garbled], tmp_path / "cache")
    with pytest.raises(ConfigError, match="pip install moabb"):
        build_corpus(["moabb:BNCI2014_001"], tmp_path / "cache")
    with pytest.raises(FileFormatError, match="build the cache with build_corpus"):
        EEGCorpus(tmp_path / "nothing")


def test_synthetic_sets_are_class_coded_and_reproducible():
    pairs = SyntheticPairs(n_classes=3, n_per_class=2, n_channels=8, n_times=64, image_size=16, seed=3)
    again = SyntheticPairs(n_classes=3, n_per_class=2, n_channels=8, n_times=64, image_size=16, seed=3)
    assert len(pairs) == 6 and pairs.labels == [0, 0, 1, 1, 2, 2]
    torch.testing.assert_close(pairs[4]["eeg"], again[4]["eeg"])
    torch.testing.assert_close(pairs[4]["image"], again[4]["image"])
    red, green = pairs[0]["image"].mean(dim=(1, 2)), pairs[2]["image"].mean(dim=(1, 2))
    assert red[0] > red[1] and green[1] > green[0]  # class colours
    assert not torch.equal(pairs[0]["eeg"], pairs[1]["eeg"])
    corpus = SyntheticCorpus(4, n_channels=8, n_times=64, background_gain=0.0)
    assert corpus[0]["eeg"].shape == (8, 64) and corpus[0]["eeg"].abs().max() > 0.5
    with pytest.raises(ConfigError, match="n_classes must be in 1..8"):
        SyntheticPairs(n_classes=9)
