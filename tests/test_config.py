"""Settings: defaults, TOML round trip, and errors that say what was wrong."""

import pytest
import tomli_w

from dd_live.config import AppConfig, FilterConfig, GeneratorConfig, WindowConfig
from dd_live.errors import ConfigError


def test_defaults_follow_the_reference_method():
    config = AppConfig()
    assert (config.filter.l_freq, config.filter.h_freq) == (5.0, 95.0)
    assert config.window.length == pytest.approx(0.44)
    assert config.generator.model == "tiny"


def test_toml_round_trip(tmp_path):
    config = AppConfig().replace(window={"mode": "marker", "length": 0.5},
                                 generator={"steps": 4, "scheduler": "ddim"})
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config.to_dict()))
    assert AppConfig.from_toml(path) == config


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"filtr": {}}, r"unknown config section \[filtr\]; valid sections: source, filter"),
        ({"filter": {"lfreq": 1}}, r"unknown key\(s\) \['lfreq'\] in \[filter\]; valid keys"),
        ({"filter": {"l_freq": 40, "h_freq": 30}}, r"l_freq \(40 Hz\) must be below h_freq"),
        ({"window": {"mode": "every"}}, r"\[window\] mode must be one of \(.*'interval'"),
        ({"generator": {"scheduler": "k-diffusion"}}, "scheduler must be one of"),
        ({"generator": {"mode": "retrieve"}}, "needs a gallery folder"),
        ({"generator": {"steps": 0}}, r"steps must be 1..1000, got 0"),
        ({"generator": {"steps": 6.5}}, r"\[generator\] steps must be a whole number, got 6.5"),
        ({"window": {"length": "0.44"}}, r"\[window\] length must be a number, got '0.44'"),
        ({"filter": {"notch": True}}, r"\[filter\] notch must be a number or a text in quotes"),
        ({"generator": {"model": 3}}, r"\[generator\] model must be a text in quotes"),
    ],
)
def test_bad_settings_say_what_and_how(data, match):
    with pytest.raises(ConfigError, match=match):
        AppConfig.from_dict(data)


def test_bad_toml_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[filter\nl_freq = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        AppConfig.from_toml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        AppConfig.from_toml(tmp_path / "missing.toml")


def test_sections_are_frozen():
    with pytest.raises(AttributeError):
        FilterConfig().l_freq = 1.0  # type: ignore[misc]
    assert WindowConfig(hop=1.0).hop == 1.0
    assert GeneratorConfig(steps=2).steps == 2


def test_toml_types_are_kept_and_checked(tmp_path):
    """Integers stay integers, an integer is a valid float, and a wrong type names its key."""
    path = tmp_path / "c.toml"
    path.write_text("[generator]\nsteps = 6\nseed = 3\n[window]\nhop = 1\n")
    config = AppConfig.from_toml(path)
    assert config.generator.steps == 6 and type(config.generator.steps) is int
    assert config.window.hop == 1.0 and type(config.window.hop) is float
    path.write_text("[window]\nlength = 'long'\n")
    with pytest.raises(ConfigError, match=r"\[window\] length must be a number, got 'long' \(str\)"):
        AppConfig.from_toml(path)
