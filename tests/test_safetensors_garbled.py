"""A garbled ``.safetensors`` file anywhere (a bare file, a part of a model folder, a LoRA, a
tiny autoencoder, a distilled UNet) is a CheckpointError naming the file, and from the CLI one
line with exit status 2; never the library's SafetensorError or diffusers' OSError.

The garbled files are real files made from real weights (the packaged demo model's, the tiny
generator's): cut short, overwritten with random bytes, or with a damaged JSON header. The CLI
runs as the user starts it, in its own process.
"""

import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

import dd_live.model
from dd_live.assets import demo_model_dir
from dd_live.errors import CheckpointError
from dd_live.generate import ImageGenerator
from dd_live.generate.loading import load_unet
from dd_live.generate.retrieval import check_weights

REFUSAL = "is not a readable safetensors file"


def _truncated(content: bytes) -> bytes:
    return content[: len(content) // 2]


def _random_bytes(content: bytes) -> bytes:
    return np.random.default_rng(5).bytes(len(content))


def _bad_header(content: bytes) -> bytes:
    """The header's length kept, its JSON broken a few bytes in."""
    (length,) = struct.unpack("<Q", content[:8])
    assert length > 20
    return content[:12] + b"\x00}{[" + content[16:]


GARBLE = {"truncated": _truncated, "random bytes": _random_bytes, "bad header": _bad_header}


def garble(path, how="truncated"):
    path.write_bytes(GARBLE[how](path.read_bytes()))
    return path


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "dd_live", *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stderr.strip().splitlines()


def _assert_refused(code, lines, path):
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("dd-live: error:"), lines
    assert f"{path} {REFUSAL}" in lines[0], lines
    assert "SafetensorError" not in lines[0] and "OSError" not in lines[0]


@pytest.mark.parametrize("how", list(GARBLE))
def test_convert_of_a_garbled_safetensors_file_is_one_line_rc_2(how, tmp_path):
    path = tmp_path / "bad.safetensors"
    shutil.copy(demo_model_dir() / "conditioner" / "model.safetensors", path)
    garble(path, how)
    code, lines = _cli("convert", path, tmp_path / "out")
    _assert_refused(code, lines, path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", list(GARBLE))
def test_model_load_raises_checkpoint_error_for_a_file_and_a_folder(how, tmp_path):
    bare = tmp_path / "bare.safetensors"
    shutil.copy(demo_model_dir() / "conditioner" / "model.safetensors", bare)
    garble(bare, how)
    with pytest.raises(CheckpointError, match=re.escape(f"{bare} {REFUSAL}")):
        dd_live.model.load(bare)
    folder = shutil.copytree(demo_model_dir() / "conditioner", tmp_path / "conditioner")
    garble(folder / "model.safetensors", how)
    weights = folder / "model.safetensors"
    with pytest.raises(CheckpointError, match=re.escape(f"{weights} {REFUSAL}")):
        dd_live.model.load(folder)


@pytest.mark.parametrize("part", ["unet/diffusion_pytorch_model.safetensors",
                                  "conditioner/model.safetensors"])
def test_run_with_a_garbled_part_of_the_model_folder_is_one_line_rc_2(part, tmp_path):
    folder = shutil.copytree(demo_model_dir(), tmp_path / "model")
    garble(folder / part, "random bytes")
    code, lines = _cli("run", "--model", folder, "--source", "synthetic", "--headless",
                       "--duration", "1")
    _assert_refused(code, lines, folder / part)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """The tiny generator (random weights) saved as a model folder, with tiny_vae/."""
    return ImageGenerator.tiny(seed=2, image_size=32).save_pretrained(
        tmp_path_factory.mktemp("tiny") / "model")


@pytest.mark.parametrize("part", ["vae", "tiny_vae"])
def test_generator_folder_with_a_garbled_part_names_the_file(part, tiny_folder, tmp_path):
    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    (weights,) = (folder / part).glob("*.safetensors")
    garble(weights, "bad header")
    with pytest.raises(CheckpointError, match=re.escape(f"{weights} {REFUSAL}")):
        ImageGenerator.from_pretrained(folder, device="cpu")


def test_garbled_tiny_vae_lora_unet_and_embedder_files_name_the_file(tiny_folder, tmp_path):
    """The files given on their own: ``tiny_vae=`` (a folder), ``lora=``, ``unet=`` and the
    retrieval embedder's weights file."""
    tiny_vae = shutil.copytree(tiny_folder / "tiny_vae", tmp_path / "taesd")
    (weights,) = tiny_vae.glob("*.safetensors")
    garble(weights)
    with pytest.raises(CheckpointError, match=re.escape(f"{weights} {REFUSAL}")):
        ImageGenerator.from_pretrained(tiny_folder, tiny_vae=tiny_vae, device="cpu")

    lora = garble(shutil.copy(tiny_folder / "unet" / "diffusion_pytorch_model.safetensors",
                              tmp_path / "lora.safetensors"), "random bytes")
    generator = ImageGenerator.tiny(image_size=32, lora=lora)
    with pytest.raises(CheckpointError, match=re.escape(f"{lora} {REFUSAL}")):
        generator.prepare()

    unet = garble(shutil.copy(tiny_folder / "unet" / "diffusion_pytorch_model.safetensors",
                              tmp_path / "onestep_unet.safetensors"))
    with pytest.raises(CheckpointError, match=re.escape(f"{unet} {REFUSAL}")):
        load_unet(unet, torch_dtype=generator.unet.dtype)

    embedder = garble(shutil.copy(lora, tmp_path / "embedder.safetensors"), "bad header")
    with pytest.raises(CheckpointError, match=re.escape(f"{embedder} {REFUSAL}")):
        check_weights("ViT-B-32", embedder)
