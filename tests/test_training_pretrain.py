"""Stage 1 (python -m training.pretrain): one real epoch, resume, real learning, config checks."""

import json

import pytest
import torch

from dd_live.errors import CheckpointError, ConfigError
from dd_live.model import EEGEncoder, MaskedSignalModel, get_preset, load
from training import pretrain
from training.common import read_log
from training.config import PRETRAIN_PRESETS, PretrainConfig, load_config
from training.data import SyntheticCorpus

TINY = ["--preset", "tiny", "--synthetic-windows", "32", "--schedule", "constant", "--warmup-epochs", "0"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pretrain_writes_checkpoint_log_and_resumes_exactly(tmp_path):
    pretrain.main([*TINY, "--epochs", "1", "--output-dir", str(tmp_path / "run")])
    run = tmp_path / "run"
    assert [r["epoch"] for r in read_log(run)] == [0]
    config = load_config(PretrainConfig, run / "train_config.json")
    assert config.model == "tiny" and config.mask_ratio == 0.75 and config.betas == (0.9, 0.95)
    assert isinstance(load(run / "encoder"), EEGEncoder)
    assert json.loads((run / "checkpoint" / "train_state.json").read_text()) == {"epoch": 0, "step": 4}

    pretrain.main([*TINY, "--epochs", "2", "--resume", "--output-dir", str(run)])
    pretrain.main([*TINY, "--epochs", "2", "--output-dir", str(tmp_path / "straight")])
    resumed, straight = read_log(run), read_log(tmp_path / "straight")
    assert [r["epoch"] for r in resumed] == [0, 1]
    assert resumed[1]["train_loss"] == pytest.approx(straight[1]["train_loss"], rel=1e-6)
    a, b = load(run / "checkpoint").state_dict(), load(tmp_path / "straight" / "checkpoint").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def masked_loss(model, eeg):
    torch.manual_seed(0)
    with torch.no_grad():
        return model.eval()(eeg, mask_ratio=0.75)["loss"].item()


def test_pretraining_learns_the_synthetic_structure(tmp_path):
    args = ["--preset", "tiny", "--synthetic-windows", "128", "--synthetic-background", "0.2",
            "--epochs", "30", "--warmup-epochs", "2", "--lr", "3e-3", "--output-dir", str(tmp_path)]
    pretrain.main(args)  # 30 epochs x 16 steps
    corpus = SyntheticCorpus(128, n_channels=8, n_times=64, background_gain=0.2, seed=PretrainConfig().seed)
    eeg = torch.stack([corpus[i]["eeg"] for i in range(len(corpus))])  # [N, 8, 64]
    torch.manual_seed(PretrainConfig().seed)
    before = masked_loss(MaskedSignalModel(get_preset("tiny", "masked_signal")), eeg)
    after = masked_loss(load(tmp_path / "checkpoint"), eeg)
    predicting_zero = (eeg**2).mean().item()
    assert after <= 0.5 * before
    assert after < 0.9 * predicting_zero  # it reconstructs signal, not just the mean


def test_config_flags_and_errors(tmp_path):
    with pytest.raises(ConfigError, match="mixed_precision must be one of"):
        pretrain.main(["--preset", "tiny", "--mixed-precision", "fp8", "--output-dir", str(tmp_path)])
    with pytest.raises(CheckpointError, match="run without --resume first"):
        pretrain.main([*TINY, "--resume", "--output-dir", str(tmp_path / "none")])
    with pytest.raises(ConfigError, match="fewer than one batch"):
        pretrain.main([*TINY, "--synthetic-windows", "4", "--output-dir", str(tmp_path / "small")])
    reference = PRETRAIN_PRESETS["reference"]
    assert (reference.lr, reference.min_lr, reference.weight_decay, reference.warmup_epochs) == (2.5e-4, 0, 0.05, 40)
    assert (reference.batch_size, reference.grad_clip, reference.seed, reference.mask_ratio) == (100, 0.8, 2022, 0.75)
