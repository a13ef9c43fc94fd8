import math

import pytest

from dd_live.errors import ConfigError
from dd_live.sources.brainflow import BrainFlowSource
from dd_live.sources.replay import ReplaySource
from dd_live.sources.spec import open_source
from dd_live.sources.synthetic import SyntheticSource


def test_synthetic_specs():
    source = open_source("synthetic")
    assert isinstance(source, SyntheticSource) and source.state is None
    source = open_source("synthetic:visual?n_channels=8&counter=1&realtime=false")
    assert source.state == "visual"
    assert source.info.n_channels == 9 and not source.realtime
    assert open_source("synthetic", n_channels=4).info.n_channels == 4  # overrides win


def test_brainflow_specs():
    source = open_source("brainflow:-1")
    assert isinstance(source, BrainFlowSource) and source.board_id == -1
    source = open_source("brainflow:cyton?serial_port=/dev/ttyUSB0")
    assert source.board_id == 0 and source.params == {"serial_port": "/dev/ttyUSB0"}


def test_file_specs(tmp_path):
    import mne
    import numpy as np

    raw = mne.io.RawArray(np.zeros((2, 500)), mne.create_info(2, 250.0, "eeg"), verbose="error")
    path = tmp_path / "x_raw.fif"
    raw.save(path, verbose="error")
    source = open_source(f"file:{path}?speed=2&loop=1")
    assert isinstance(source, ReplaySource) and source.speed == 2 and source.loop
    bare = open_source(str(path))
    assert isinstance(bare, ReplaySource) and bare.speed == 1 and not bare.loop
    assert math.isinf(open_source(f"{path}?speed=0").speed)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "it is empty"),
        ("serial:/dev/ttyUSB0", "unknown kind 'serial'"),
        ("brainflow:", "no board given"),
        ("lsl:", "no stream given"),
        ("synthetic?color=red", r"unknown parameter\(s\) \['color'\]"),
    ],
)
def test_bad_spec_lists_accepted_forms(spec, why):
    with pytest.raises(
        ConfigError, match=rf"(?s)bad source spec .*{why}.*Accepted forms:.*lsl-type:TYPE"
    ):
        open_source(spec)


def test_a_yes_no_parameter_that_is_neither_is_refused(tmp_path):
    """``loop=maybe`` used to replay once without a word; now it is a clear error."""
    import mne
    import numpy as np

    raw = mne.io.RawArray(np.zeros((2, 500)), mne.create_info(2, 250.0, "eeg"), verbose="error")
    path = tmp_path / "x_raw.fif"
    raw.save(path, verbose="error")
    assert open_source(f"file:{path}?loop=yes").loop
    assert not open_source(f"file:{path}?loop=0").loop
    with pytest.raises(ConfigError, match=r"loop must be one of .*got 'maybe'"):
        open_source(f"file:{path}?loop=maybe")
    with pytest.raises(ConfigError, match=r"realtime must be one of .*got 'sometimes'"):
        open_source("synthetic?realtime=sometimes")
    with pytest.raises(ConfigError, match=r"dejitter must be one of .*got 'maybe'"):
        open_source("brainflow:-1?dejitter=maybe")
    assert open_source("brainflow:-1?dejitter=off").dejitter is False


def test_a_replay_speed_that_is_no_number_names_the_setting(tmp_path):
    import mne
    import numpy as np

    raw = mne.io.RawArray(np.zeros((2, 500)), mne.create_info(2, 250.0, "eeg"), verbose="error")
    path = tmp_path / "x_raw.fif"
    raw.save(path, verbose="error")
    with pytest.raises(ConfigError, match=r"replay speed must be a number .*got 'fast'"):
        open_source(f"file:{path}?speed=fast")
