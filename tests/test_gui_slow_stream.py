"""The window on a stream too slow for the online filter: shown raw, with the reason.

A real 10 Hz XDF file (written here) replayed into a real MainWindow offscreen: the session
runs without a filter (the traces draw the samples as received) and the banner says why.
"""

from __future__ import annotations

import numpy as np
from test_gui import close_window, wait_until
from test_gui_faults import app, drawn_rows, make_window  # noqa: F401 (fixtures)
from test_source_xdf import write_xdf_streams, xdf_stream

from dd_live.config import NO_MODEL, AppConfig, GeneratorConfig


def test_window_shows_a_10_hz_stream_raw_and_says_why(make_window, tmp_path):  # noqa: F811
    n_times = 300
    values = np.vstack([20 * np.sin(np.arange(n_times)), np.arange(n_times)]).astype(np.float32)
    path = tmp_path / "slow.xdf"
    write_xdf_streams(path, [xdf_stream("slow", "EEG", 50.0 + np.arange(n_times) / 10.0, values,
                                        srate=10.0, labels=("Fz", "COUNTER"))])
    config = AppConfig().replace(source={"spec": f"file:{path}?speed=4"},
                                 generator=GeneratorConfig(model=NO_MODEL))
    window = make_window(config)
    window.show()
    window.start_session()
    assert wait_until(lambda: window.phase == "running", 30), window.banner.text()
    session = window.session
    assert session.filtered is session.raw  # no filter: the windows and traces are the raw samples
    assert wait_until(lambda: "no online filter" in window.banner.text(), 10), \
        window.banner.text()
    assert "10 Hz stream" in window.banner.text()
    assert wait_until(lambda: session.raw.n_written >= 20 and drawn_rows(window.traces) == 2, 30)
    close_window(window)
