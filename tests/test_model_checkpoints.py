"""Our checkpoint folders: bit-exact round trips, eval mode, clear errors for broken folders."""

import json

import pytest
import torch

from dd_live import __version__
from dd_live.errors import CheckpointError
from dd_live.model import (
    EEGConditioner,
    EEGEncoder,
    EncoderConfig,
    MaskedSignalModel,
    get_preset,
    load,
    save,
)


def _models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    trained_positions = EncoderConfig(**{**get_preset("tiny").to_dict(), "train_pos_embed": True})
    return [
        EEGEncoder(trained_positions),
        MaskedSignalModel(get_preset("tiny", kind="masked_signal")),
        EEGConditioner(get_preset("tiny", kind="conditioner")),
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_save_load_round_trip_is_bit_exact(tmp_path, index) -> None:
    model = _models()[index]
    with torch.no_grad():  # make every tensor differ from a fresh init
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.train()
    folder = save(model, tmp_path / "ckpt")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["kind"] in {"eeg_encoder", "masked_signal_model", "eeg_conditioner"}
    assert meta["dd_live_version"] == __version__
    loaded = load(folder)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    original = model.state_dict()
    assert set(loaded.state_dict()) == set(original)
    for key, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, original[key]), key
    eeg = torch.randn(2, 8, 64)
    model.eval()
    if isinstance(model, MaskedSignalModel):
        model, loaded = model.encoder, loaded.encoder
    with torch.no_grad():
        first, second = model(eeg), loaded(eeg)
    if isinstance(first, dict):
        assert all(torch.equal(first[key], second[key]) for key in first)
    else:
        assert torch.equal(first, second)


def test_trainable_position_setting_survives_the_round_trip(tmp_path) -> None:
    loaded = load(save(_models()[0], tmp_path / "enc"))
    assert loaded.pos_embed.requires_grad


@pytest.mark.parametrize("missing", ["model.safetensors", "config.json"])
def test_folder_missing_a_file_names_it(tmp_path, missing) -> None:
    folder = save(_models()[0], tmp_path / "ckpt")
    (folder / missing).unlink()
    with pytest.raises(CheckpointError, match=rf"has no {missing}"):
        load(folder)


def test_config_that_does_not_match_the_weights_is_refused(tmp_path) -> None:
    folder = save(_models()[0], tmp_path / "ckpt")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["depth"] = 3
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError, match=r"does not match its config.json: missing \['blocks\.2"
    ):
        load(folder)
    meta["kind"] = "unet"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a valid dd-live checkpoint config"):
        load(folder)


def test_nothing_at_the_path(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load(tmp_path / "nowhere")


def test_save_refuses_other_modules(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="cannot save a Linear"):
        save(torch.nn.Linear(2, 2), tmp_path / "x")
