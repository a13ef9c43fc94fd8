"""README's settings block: every acquisition/stream setting is listed, with its real default.

The block is cut out of README.md, written to a file and loaded through the app's own
``--config`` loader, so a key that does not exist, a wrong type or a wrong default shows here."""

import re
import tomllib
from pathlib import Path

from dd_live.config import AppConfig

README = Path(__file__).resolve().parents[1] / "README.md"
# the sections of the acquisition side and the live engine (the generator's keys are many and
# partly hardware-specific; README's "Speed" section covers those)
SECTIONS = ("source", "filter", "channels", "window", "quality", "record", "buffer", "output")


def _settings_block() -> str:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text[text.index("### Settings"):], re.S)
    assert block, "README's Settings section has no ```toml block"
    return block.group(1)


def test_the_settings_block_lists_every_setting_with_its_default(tmp_path):
    block = _settings_block()
    documented = tomllib.loads(block)
    config_file = tmp_path / "readme.toml"
    config_file.write_text(block, encoding="utf-8")
    loaded = AppConfig.from_toml(config_file).to_dict()  # unknown keys, wrong types: refused
    defaults = AppConfig().to_dict()
    for section in SECTIONS:
        for key, default in defaults[section].items():
            assert key in documented.get(section, {}), f"README lacks [{section}] {key}"
            assert loaded[section][key] == default, (
                f"README gives [{section}] {key} = {documented[section][key]!r}, "
                f"the default is {default!r}")
