"""THINGS-EEG2's preprocessed per-subject arrays, in the published layout, written here small.

The files are NumPy-saved dicts (pickled); the loader unpickles only arrays, lists, strings
and numbers. Sizes are cut down (6 training and 4 test images instead of 16540 and 200).
"""

import json

import numpy as np
import pytest
from PIL import Image

from dd_live.errors import FileFormatError
from training import evaluate, finetune
from training.data.things_eeg2 import ThingsEEG2, load_npy_dict

N_CHANNELS, N_TIMES = 17, 100  # as published: 17 posterior channels, 100 Hz, -0.2..0.79 s
TIMES = np.round(np.arange(-20, 80) / 100, 2)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_things(root, n_train=6, n_test=4, train_reps=4, test_reps=8, seed=0):
    rng = np.random.default_rng(seed)
    names = [f"O{k}" for k in range(N_CHANNELS)]
    meta = {"train_img_concepts": [], "train_img_files": [], "test_img_concepts": [], "test_img_files": []}
    for split, n, folder in (("train", n_train, "training_images"), ("test", n_test, "test_images")):
        for i in range(n):
            concept = f"{i + 1:05d}_thing{split}{i}"
            name = f"thing{split}{i}_01b.jpg"
            (root / "image_set" / folder / concept).mkdir(parents=True)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            Image.new("RGB", (24, 24), colour).save(root / "image_set" / folder / concept / name)
            meta[f"{split}_img_concepts"].append(concept)
            meta[f"{split}_img_files"].append(name)
    np.save(root / "image_set" / "image_metadata.npy", meta)
    subject = root / "preprocessed_data" / "sub-01"
    subject.mkdir(parents=True)
    for split, n, reps in (("training", n_train, train_reps), ("test", n_test, test_reps)):
        data = rng.standard_normal((n, reps, N_CHANNELS, N_TIMES)).astype(np.float32)
        data[:, :, :, 30:60] += np.arange(n)[:, None, None, None]  # each image its own evoked level
        np.save(subject / f"preprocessed_eeg_{split}.npy",
                {"preprocessed_eeg_data": data, "ch_names": names, "times": TIMES})
    return root


def test_loader_reads_the_published_layout_and_averages_test_repetitions(tmp_path):
    root = write_things(tmp_path / "things")
    train = ThingsEEG2(root, 1, "train", n_times=64, image_size=16)
    assert len(train) == 6 * 4 and train[0]["eeg"].shape == (17, 64) and train[0]["image"].shape == (3, 16, 16)
    assert train.ch_names[0] == "O0" and train.paths[2].name == "thingtrain2_01b.jpg"
    test = ThingsEEG2(root, 1, "test", n_times=64, image_size=16)
    assert len(test) == 4 and test.labels == [0, 1, 2, 3]  # 8 repetitions averaged per image
    assert np.allclose(test.eeg.mean(axis=2), 0, atol=1e-5) and np.allclose(test.eeg.std(axis=2), 1, atol=1e-3)
    assert len(ThingsEEG2(root, 1, "test", n_times=64, average_repeats=False)) == 32
    with pytest.raises(Exception, match="sub-02"):
        ThingsEEG2(root, 2, "train")


def test_a_pickle_that_is_not_plain_data_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    path = tmp_path / "evil.npy"
    np.save(path, {"preprocessed_eeg_data": Payload()}, allow_pickle=True)
    with pytest.raises(FileFormatError, match="refusing to unpickle builtins.print"):
        load_npy_dict(path)


def test_finetune_and_200_way_style_retrieval_on_things(tmp_path):
    root = write_things(tmp_path / "things")
    out = tmp_path / "out"
    finetune.main(["--preset", "tiny", "--data", f"things-eeg2:{root}", "--subject", "1",
                   "--output-dir", str(out), "--image-size", "16", "--epochs", "1", "--vae-epochs", "0",
                   "--batch-size", "8", "--align-epochs", "2"])
    results = evaluate.main(["--model", str(out / "model"), "--metric", "retrieval",
                             "--output-dir", str(tmp_path / "ev")])
    retrieval = json.loads((tmp_path / "ev" / "results.json").read_text())["retrieval"]
    assert retrieval == results["retrieval"]
    assert retrieval["n_way"] == 4 and retrieval["n_trials"] == 4 and 0 <= retrieval["top1"] <= 1
