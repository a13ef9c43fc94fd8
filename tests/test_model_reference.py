"""Import of DreamDiffusion release files: strict key mapping, safe unpickling, generator split.

The files are written here with the release's key names and layouts (docs/reference.md)
at a small size, with a config object pickled from a class ``config.Config_MBM_EEG`` (or
``Config_Generative_Model``) of a throw-away module, exactly as the release pickles its own.
"""

import logging
import math
import os
import re
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dd_live.errors import CheckpointError
from dd_live.model import (
    EEGConditioner,
    EEGEncoder,
    MaskedSignalModel,
    convert,
    import_reference,
    load,
    load_reference_generator_state,
)

N_CHANNELS, PATCH, N_TOKENS, DIM, DEPTH, HEADS = 6, 4, 8, 16, 2, 2
DEC_DIM, DEC_DEPTH, DEC_HEADS = 8, 1, 2
N_TIMES = N_TOKENS * PATCH
COND = "cond_stage_model."
ENCODER_KEYS = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")


def _block(prefix: str, dim: int) -> dict[str, tuple[int, ...]]:
    parts = {
        "norm1.weight": (dim,),
        "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim),
        "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim),
        "attn.proj.bias": (dim,),
        "norm2.weight": (dim,),
        "norm2.bias": (dim,),
        "mlp.fc1.weight": (dim, dim),
        "mlp.fc1.bias": (dim,),
        "mlp.fc2.weight": (dim, dim),
        "mlp.fc2.bias": (dim,),
    }
    return {prefix + name: shape for name, shape in parts.items()}


def _encoder_shapes(prefix: str = "") -> dict[str, tuple[int, ...]]:
    shapes = {
        "cls_token": (1, 1, DIM),
        "pos_embed": (1, N_TOKENS + 1, DIM),
        "patch_embed.proj.weight": (DIM, N_CHANNELS, PATCH),
        "patch_embed.proj.bias": (DIM,),
        "norm.weight": (DIM,),
        "norm.bias": (DIM,),
    }
    for i in range(DEPTH):
        shapes.update(_block(f"blocks.{i}.", DIM))
    return {prefix + key: shape for key, shape in shapes.items()}


def _random(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=gen) * 0.3 for key, shape in shapes.items()}


def mae_state() -> dict[str, torch.Tensor]:
    """The pretrained masked autoencoder's ``model`` entry, release key names."""
    shapes = _encoder_shapes()
    shapes.update(
        {
            "mask_token": (1, 1, DEC_DIM),
            "decoder_pos_embed": (1, N_TOKENS + 1, DEC_DIM),
            "decoder_embed.weight": (DEC_DIM, DIM),
            "decoder_embed.bias": (DEC_DIM,),
            "decoder_norm.weight": (DEC_DIM,),
            "decoder_norm.bias": (DEC_DIM,),
            "decoder_pred.weight": (N_CHANNELS * PATCH, DEC_DIM),
            "decoder_pred.bias": (N_CHANNELS * PATCH,),
        }
    )
    for i in range(DEC_DEPTH):
        shapes.update(_block(f"decoder_blocks.{i}.", DEC_DIM))
    return _random(shapes)


def generation_state() -> dict[str, torch.Tensor]:
    """The generation checkpoint's ``model_state_dict``: EEG side plus a few generator keys."""
    shapes = _encoder_shapes(f"{COND}mae.")
    shapes.update(
        {
            f"{COND}mae.mask_token": (1, 1, DIM),
            f"{COND}channel_mapper.0.weight": (N_TOKENS // 2, N_TOKENS, 1),
            f"{COND}channel_mapper.0.bias": (N_TOKENS // 2,),
            f"{COND}channel_mapper.1.weight": (77, N_TOKENS // 2, 1),
            f"{COND}channel_mapper.1.bias": (77,),
            f"{COND}dim_mapper.weight": (768, DIM),
            f"{COND}dim_mapper.bias": (768,),
            f"{COND}mapping.maxpool.weight": (1, N_TOKENS, 1),
            f"{COND}mapping.maxpool.bias": (1,),
            f"{COND}mapping.fc.weight": (768, DIM),
            f"{COND}mapping.fc.bias": (768,),
            "model.diffusion_model.time_embed_condtion.0.weight": (38, 77, 1),
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (
                4,
                768,
            ),
            "first_stage_model.encoder.conv_in.weight": (4, 3, 3, 3),
            "image_embedder.transformer.post_layernorm.weight": (8,),
            "betas": (1000,),
        }
    )
    return _random(shapes, seed=1)


def write_release_file(path: Path, contents: dict, class_name: str, **attrs) -> Path:
    """torch.save ``contents`` plus a ``config`` object of class ``config.<class_name>``."""
    module = types.ModuleType("config")
    config_class = type(class_name, (), {"__module__": "config"})
    setattr(module, class_name, config_class)
    config = config_class()
    config.__dict__.update(attrs)
    previous = sys.modules.get("config")
    sys.modules["config"] = module  # only while pickling; loading must not need it
    try:
        torch.save({**contents, "config": config}, path)
    finally:
        if previous is None:
            del sys.modules["config"]
        else:
            sys.modules["config"] = previous
    return path


def write_pretrained(path: Path, state: dict | None = None) -> Path:
    contents = {
        "model": mae_state() if state is None else state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 2.5e-4, "params": [0, 1]}]},
        "epoch": 499,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0},
    }
    return write_release_file(
        path,
        contents,
        "Config_MBM_EEG",
        num_heads=HEADS,
        decoder_num_heads=DEC_HEADS,
        mask_ratio=0.75,
        root_path="../dreamdiffusion/",
        seed=2022,
    )


def write_generation(path: Path, state: dict | None = None) -> Path:
    contents = {
        "model_state_dict": generation_state() if state is None else state,
        "state": torch.get_rng_state(),
    }
    return write_release_file(
        path, contents, "Config_Generative_Model", global_pool=False, lr=5.3e-5
    )


def _ours(key: str) -> str:
    return "encoder." + key if key.startswith(ENCODER_KEYS) else key


def test_pretrained_file_lands_every_tensor_in_its_place(tmp_path) -> None:
    source = mae_state()
    model = import_reference(write_pretrained(tmp_path / "checkpoint.pth", source))
    assert isinstance(model, MaskedSignalModel) and not model.training
    enc = model.config.encoder
    assert (enc.n_channels, enc.n_times, enc.embed_dim, enc.depth, enc.num_heads) == (
        N_CHANNELS,
        N_TIMES,
        DIM,
        DEPTH,
        HEADS,
    )
    assert model.config.decoder.depth == DEC_DEPTH and model.config.mask_ratio == 0.75
    ours = model.state_dict()
    assert set(ours) == {_ours(key) for key in source}
    for key, tensor in source.items():
        assert torch.equal(ours[_ours(key)], tensor), key


def test_perturbing_one_source_tensor_changes_exactly_its_target(tmp_path) -> None:
    base = import_reference(write_pretrained(tmp_path / "a.pth")).state_dict()
    state = mae_state()
    state["blocks.1.attn.qkv.weight"][3, 2] += 1.0
    changed = import_reference(write_pretrained(tmp_path / "b.pth", state)).state_dict()
    differing = [key for key in base if not torch.equal(base[key], changed[key])]
    assert differing == ["encoder.blocks.1.attn.qkv.weight"]


def _hand_encoder(src: dict, prefix: str, eeg: torch.Tensor) -> torch.Tensor:
    """The inference encoder written out from the release's tensors by their own names."""

    def t(name: str) -> torch.Tensor:
        return src[prefix + name]

    spans = eeg.reshape(eeg.shape[0], N_CHANNELS, N_TOKENS, PATCH).permute(0, 2, 1, 3)
    x = torch.einsum("blcp,dcp->bld", spans, t("patch_embed.proj.weight"))
    x = x + t("patch_embed.proj.bias") + t("pos_embed")[:, 1:]
    head_dim = DIM // HEADS
    for i in range(DEPTH):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (DIM,), t(b + "norm1.weight"), t(b + "norm1.bias"))
        q, k, v = (h @ t(b + "attn.qkv.weight").T + t(b + "attn.qkv.bias")).split(DIM, -1)
        heads = []
        for hd in range(HEADS):
            sl = slice(hd * head_dim, (hd + 1) * head_dim)
            weights = torch.softmax(
                q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(head_dim), -1
            )
            heads.append(weights @ v[..., sl])
        x = x + torch.cat(heads, -1) @ t(b + "attn.proj.weight").T + t(b + "attn.proj.bias")
        h = F.layer_norm(x, (DIM,), t(b + "norm2.weight"), t(b + "norm2.bias"))
        h = F.gelu(h @ t(b + "mlp.fc1.weight").T + t(b + "mlp.fc1.bias"))
        x = x + h @ t(b + "mlp.fc2.weight").T + t(b + "mlp.fc2.bias")
    return F.layer_norm(x, (DIM,), t("norm.weight"), t("norm.bias"))


def test_imported_encoder_computes_what_the_release_weights_say(tmp_path) -> None:
    source = mae_state()
    encoder = import_reference(write_pretrained(tmp_path / "c.pth", source), kind="encoder")
    assert isinstance(encoder, EEGEncoder)
    eeg = torch.randn(3, N_CHANNELS, N_TIMES)
    with torch.no_grad():
        torch.testing.assert_close(
            encoder(eeg), _hand_encoder(source, "", eeg), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize(
    ("edit", "listed", "words"),
    [
        ("leftover", "blocks.0.attn.q_norm.weight", "has no place for"),
        ("missing", "decoder_norm.bias", "the file lacks"),
    ],
)
def test_pretrained_leftover_or_missing_key_is_refused(tmp_path, edit, listed, words) -> None:
    state = mae_state()
    if edit == "leftover":
        state[listed] = torch.ones(DIM)
    else:
        del state[listed]
    path = write_pretrained(tmp_path / "bad.pth", state)
    with pytest.raises(CheckpointError, match=rf"{words}: {re.escape(listed)}"):
        import_reference(path)


def test_generation_file_gives_a_conditioner_with_every_tensor_placed(tmp_path) -> None:
    source = generation_state()
    path = write_generation(tmp_path / "gen.pth", source)
    model = import_reference(path, num_heads=HEADS)
    assert isinstance(model, EEGConditioner) and not model.training
    ours = model.state_dict()
    renames = {
        f"{COND}mae.": "encoder.",
        f"{COND}channel_mapper.": "head.channel_mapper.",
        f"{COND}dim_mapper.": "head.dim_mapper.",
        f"{COND}mapping.maxpool.": "clip_projection.token_pool.",
        f"{COND}mapping.fc.": "clip_projection.fc.",
    }
    placed = set()
    for key, tensor in source.items():
        if not key.startswith(COND) or key == f"{COND}mae.mask_token":
            continue
        theirs = next(p for p in renames if key.startswith(p))
        target = renames[theirs] + key[len(theirs) :]
        assert torch.equal(ours[target], tensor), key
        placed.add(target)
    assert set(ours) - placed == {"null_context"}
    assert torch.all(model.null_context == 0)
    eeg = torch.randn(2, N_CHANNELS, N_TIMES)
    with torch.no_grad():
        out = model(eeg)
        torch.testing.assert_close(
            out["tokens"], _hand_encoder(source, f"{COND}mae.", eeg), rtol=1e-4, atol=1e-4
        )
    assert out["context"].shape == (2, 77, 768) and out["clip"].shape == (2, 768)


def test_generation_perturbation_and_strictness(tmp_path) -> None:
    base = import_reference(write_generation(tmp_path / "a.pth"), num_heads=HEADS).state_dict()
    state = generation_state()
    state[f"{COND}mapping.maxpool.weight"][0, 5, 0] -= 2.0
    changed = import_reference(write_generation(tmp_path / "b.pth", state), num_heads=HEADS)
    differing = [k for k in base if not torch.equal(base[k], changed.state_dict()[k])]
    assert differing == ["clip_projection.token_pool.weight"]

    state = generation_state()
    state[f"{COND}mapping.extra.weight"] = torch.ones(3)
    with pytest.raises(
        CheckpointError, match=r"has no place for: cond_stage_model\.mapping\.extra"
    ):
        import_reference(write_generation(tmp_path / "c.pth", state), num_heads=HEADS)
    state = generation_state()
    del state[f"{COND}dim_mapper.bias"]
    with pytest.raises(
        CheckpointError, match=r"the file lacks: cond_stage_model\.dim_mapper\.bias"
    ):
        import_reference(write_generation(tmp_path / "d.pth", state), num_heads=HEADS)


def test_generator_part_is_returned_untouched(tmp_path) -> None:
    source = generation_state()
    generator = load_reference_generator_state(write_generation(tmp_path / "g.pth", source))
    expected = {k for k in source if not k.startswith(COND)}
    assert set(generator) == expected
    for key in expected:
        assert torch.equal(generator[key], source[key])
    with pytest.raises(CheckpointError, match="only a fine-tuned generation checkpoint"):
        load_reference_generator_state(write_pretrained(tmp_path / "p.pth"))


def test_wrong_kind_for_the_file_is_explained(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="has no conditioning heads"):
        import_reference(write_pretrained(tmp_path / "p.pth"), kind="conditioner")
    with pytest.raises(CheckpointError, match="has no pretraining decoder"):
        import_reference(write_generation(tmp_path / "g.pth"), kind="masked_signal")
    encoder = import_reference(tmp_path / "g.pth", kind="encoder", num_heads=HEADS)
    assert isinstance(encoder, EEGEncoder)


def test_position_table_of_another_length_is_interpolated(tmp_path, caplog) -> None:
    source = mae_state()
    path = write_pretrained(tmp_path / "p.pth", source)
    with caplog.at_level(logging.INFO, logger="dd_live"):
        model = import_reference(path, n_times=N_TIMES // 2)
    assert "interpolated pos_embed from 8 to 4 token positions" in caplog.text
    table = source["pos_embed"]
    expected = torch.cat([table[:, :1], table[:, 1::2]], dim=1)  # nearest: rows 0, 2, 4, 6
    assert torch.equal(model.encoder.pos_embed, expected)
    assert model(torch.randn(1, N_CHANNELS, N_TIMES // 2))["pred"].shape == (1, 4, 24)


class _RunsCode:
    """A pickle payload that would create ``marker`` when unpickled."""

    def __init__(self, call, marker: Path) -> None:
        self.call, self.marker = call, marker

    def __reduce__(self):
        if self.call == "system":
            return os.system, (f"touch {self.marker}",)
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize(("call", "global_name"), [("system", "system"), ("eval", "eval")])
def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path, call, global_name) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"model": mae_state(), "config": _RunsCode(call, marker)}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=rf"global '[\w.]*{global_name}'.*could run code"):
        load(path)
    assert not marker.exists()


def test_unknown_class_in_the_config_module_is_refused(tmp_path) -> None:
    path = write_release_file(tmp_path / "x.pth", {"model": mae_state()}, "Config_Evil")
    with pytest.raises(CheckpointError, match=r"'config\.Config_Evil'.*nothing in it was run"):
        import_reference(path)


def test_load_and_convert_open_release_files_and_our_folders(tmp_path) -> None:
    path = write_pretrained(tmp_path / "checkpoint.pth")
    encoder = load(path)  # the app's view of a pretrained-encoder file: its encoder
    assert isinstance(encoder, EEGEncoder) and not encoder.training
    imported = import_reference(path)
    assert torch.equal(encoder.blocks[1].mlp.fc2.weight, imported.encoder.blocks[1].mlp.fc2.weight)
    folder = convert(path, tmp_path / "converted")  # keeps the decoder too
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    reloaded = load(folder)
    assert isinstance(reloaded, MaskedSignalModel) and not reloaded.training
    for key, tensor in imported.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], tensor)
    assert reloaded.config == imported.config
    with pytest.raises(CheckpointError, match="not an empty folder"):
        convert(path, folder)
    conditioner = load(convert(write_generation(tmp_path / "gen.pth"), tmp_path / "cond"))
    assert isinstance(conditioner, EEGConditioner)
