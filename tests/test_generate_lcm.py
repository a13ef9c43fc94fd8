"""LCM through LCM-LoRA weights: a LoRA for the tiny UNet, saved in diffusers' LoRA format by
the test (as LCM-LoRA for SD 1.5 is distributed), is loaded through ``lcm_lora=`` and fused.
The LoRA's weights are random: this checks the loading path and the LCM sampler, not quality.
"""

import pytest
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from dd_live.errors import GenerationError
from dd_live.generate import ImageGenerator

pytestmark = pytest.mark.filterwarnings(
    # diffusers notes that the tiny decoder's saved config has a key it does not use
    "ignore:The config attributes:UserWarning")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("lcm")
    torch.manual_seed(0)
    base = ImageGenerator.tiny(seed=0, image_size=32)
    base.save_pretrained(root / "base")
    base.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # peft starts LoRA's up-projection at zero: make it do something
        for name, param in base.unet.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.2)
    lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(base.unet))
    StableDiffusionPipeline.save_lora_weights(root / "lora", unet_lora_layers=lora,
                                              safe_serialization=True)
    return root


def test_lcm_lora_is_loaded_fused_and_sampled_in_few_steps(folders):
    lcm = ImageGenerator.from_pretrained(folders / "base", scheduler="lcm",
                                         num_inference_steps=4, lcm_lora=folders / "lora")
    plain = ImageGenerator.from_pretrained(folders / "base", num_inference_steps=4)
    lcm.prepare()
    plain.prepare()
    context = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(1))
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        with_lora = lcm.unet(latents, 500, context).sample
        without = plain.unet(latents, 500, context).sample
    assert not torch.allclose(with_lora, without)  # the LoRA is in the UNet's weights
    result = lcm(context, seed=3)
    assert result.timings["steps"] == 4
    assert result.images[0].size == (32, 32)
    again = lcm(context, seed=3)
    assert again.images[0].tobytes() == result.images[0].tobytes()


def test_lcm_without_lcm_weights_says_how_to_get_them(folders):
    with pytest.raises(GenerationError, match="lcm_lora="):
        ImageGenerator.from_pretrained(folders / "base", scheduler="lcm",
                                       num_inference_steps=4).prepare()
