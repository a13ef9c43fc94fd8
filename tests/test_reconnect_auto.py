"""Reconnect with the default settings: an LSL app that restarts without its source id.

A real outlet process (tests/lsl_outlet.py) publishes 600 samples with a source id, goes away,
and comes back as a stream of the same name, type, host and layout but no source id, its
counter 400 samples on (what an app pushes while it restarts: lost). A real LiveSession with
the default ``[source]`` settings records it: the session waits for the source id, then takes
the same-name stream (a log line and a ``reconnect`` event saying it matched by name), and the
recording's counter channel holds 0..599 then 1000..1599: the exact gap, nothing else.
"""

import logging
import time

import mne
import numpy as np
from test_fault_lsl import Outlet, phase

from dd_live.config import AppConfig, RecordConfig, SourceConfig
from dd_live.recording import read_events
from dd_live.session import LiveSession


def test_app_restarted_without_its_source_id_is_picked_up_by_default(stream_name, tmp_path,
                                                                      caplog):
    assert SourceConfig().reconnect == "auto"
    first = phase(stream_name, n_samples=600, pause_after=0.3)
    second = phase(stream_name, source_id="", first=1000, n_samples=600)
    outlet = Outlet([first, second])
    config = AppConfig(source=SourceConfig(spec=f"lsl:{stream_name}"),
                       record=RecordConfig(enabled=True, root=str(tmp_path), name="s"))
    session = LiveSession(config, generate=False, threaded=False)
    events = []
    session.callbacks.event.append(events.append)
    caplog.set_level(logging.INFO, logger="dd_live")
    released = False
    try:
        session.start()
        deadline = time.monotonic() + 40.0
        while session.raw.n_written < 1200 and time.monotonic() < deadline:
            session.step()
            if not released and session.raw.n_written >= 600:
                outlet.release()  # the reader holds the first run's samples: the app goes
                released = True
    finally:
        session.stop()
        outlet.close()
    assert session.raw.n_written == 1200
    assert session.source.info.source_id == ""
    kinds = [e.kind for e in events if e.kind in ("disconnect", "gap", "reconnect", "layout")]
    assert kinds == ["disconnect", "gap", "reconnect"]
    (back,) = [e for e in events if e.kind == "reconnect"]
    assert back.extra["matched"] == "name" and "matched by name" in back.description
    assert any("matched by name, type, host and layout" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    (folder,) = tmp_path.iterdir()
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    counter = raw.get_data(picks="COUNTER")[0]
    np.testing.assert_array_equal(counter, np.r_[np.arange(600), np.arange(1000, 1600)])
    (recorded,) = [e for e in read_events(folder) if e["type"] == "reconnect"]
    assert recorded["matched"] == "name"
