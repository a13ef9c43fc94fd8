"""A real LSL outlet in its own process, for the tests (run as ``python tests/lsl_outlet.py
JSON``; liblsl reads ``LSLAPICFG`` from the environment the test passes on: loopback only).

The JSON argument is a list of phases; each phase opens an outlet, waits for an inlet,
pushes its samples and closes the outlet (a lost stream), then the next phase starts::

    {"name": "...", "source_id": "...", "n_channels": 128, "sfreq": 1000.0,
     "first": 0,            # counter value of the first sample
     "n_samples": 2000,
     "chunk": 10,           # samples per push_chunk
     "speed": 4.0,          # pushes this many times faster than real time (0: as fast as it can)
     "jitter": 0.02,        # each chunk's stamp is off by uniform(-jitter, +jitter) s
     "skip": [[1000, 300]], # counter values 1000..1299 are never sent (samples lost)
     "counter_label": "COUNTER",
     "format": "float32",
     "hold": 3.0,           # seconds the outlet stays open after its last sample (ended
                            # early by a line on stdin, or when the test closes stdin)
     "pause_after": 0.3}    # seconds between closing this outlet and opening the next

(liblsl drops what an inlet has received but not pulled yet when its outlet goes, so ``hold``
gives the reader time to pull everything before the "lost stream" comes.)

Channel 0 is the counter; channel ``c`` of the sample with counter value ``n`` carries
``20 sin(0.3 n + c)`` microvolts (:func:`row_values`), so a row mixed from two samples shows. The process prints
``ready`` when an inlet is connected and ``done`` at the end, then waits for stdin to close.
"""

import json
import select
import sys
import time

import numpy as np
import pylsl


def row_values(counter: np.ndarray, n_channels: int) -> np.ndarray:
    """``(n_times, n_channels)``: the counter, then ``20 sin(0.3 n + c)`` (µV) on channel c."""
    values = 20.0 * np.sin(0.3 * counter[:, None] + np.arange(n_channels)[None, :])
    values[:, 0] = counter
    return values


def make_outlet(phase: dict) -> pylsl.StreamOutlet:
    fmt = pylsl.cf_double64 if phase.get("format") == "double64" else pylsl.cf_float32
    info = pylsl.StreamInfo(phase["name"], "EEG", phase["n_channels"], phase["sfreq"], fmt,
                            phase["source_id"])
    channels = info.desc().append_child("channels")
    for c in range(phase["n_channels"]):
        channel = channels.append_child("channel")
        channel.append_child_value("label", phase.get("counter_label", "COUNTER") if c == 0
                                   else f"E{c}")
        channel.append_child_value("type", "misc" if c == 0 else "EEG")
        channel.append_child_value("unit", "" if c == 0 else "microvolts")
    return pylsl.StreamOutlet(info, chunk_size=phase.get("chunk", 10))


def push_phase(phase: dict, rng: np.random.Generator) -> None:
    outlet = make_outlet(phase)
    if not outlet.wait_for_consumers(timeout=20.0):
        raise SystemExit(f"no inlet connected to {phase['name']}")
    print("ready", flush=True)
    sfreq, chunk, speed = phase["sfreq"], phase.get("chunk", 10), phase.get("speed", 4.0)
    counter = np.arange(phase.get("first", 0), phase.get("first", 0) + phase["n_samples"])
    for start, length in phase.get("skip", []):
        counter = counter[(counter < start) | (counter >= start + length)]
    t0 = pylsl.local_clock() - counter[0] / sfreq
    wall0 = time.monotonic()
    jitter = phase.get("jitter", 0.0)
    for begin in range(0, counter.size, chunk):
        part = counter[begin:begin + chunk].astype(np.float64)
        stamp = t0 + part[-1] / sfreq + (rng.uniform(-jitter, jitter) if jitter else 0.0)
        outlet.push_chunk(np.ascontiguousarray(row_values(part, phase["n_channels"])), stamp)
        if speed:
            due = wall0 + (part[-1] - counter[0] + 1) / sfreq / speed
            time.sleep(max(0.0, due - time.monotonic()))
    readable, _, _ = select.select([sys.stdin], [], [], phase.get("hold", 3.0))
    if readable:
        sys.stdin.readline()  # "the reader has it all" (or EOF: the test is done)
    del outlet


def main() -> None:
    phases = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    for phase in phases:
        push_phase(phase, rng)
        time.sleep(phase.get("pause_after", 0.3))
    print("done", flush=True)
    sys.stdin.read()  # the test closes stdin when it is done


if __name__ == "__main__":
    main()
