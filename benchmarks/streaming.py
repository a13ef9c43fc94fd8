"""Streaming benchmark: LSL acquisition, online filter and ring buffer, against baselines
measured in the same run.

For 128 ch x 1 kHz and 8 ch x 250 Hz:

- a pylsl outlet (its own process) streams a counter channel; two consumers (each its own
  process, on the same outlet at the same time) count the samples they lost and their CPU
  time / wall time: dd-live (LSLSource + AcquisitionThread + RingBuffer) and mne-lsl
  (``StreamLSL(bufsize).connect()``);
- StreamingFilter (5-95 Hz band-pass + 50 Hz notch) throughput as a multiple of real time,
  and against scipy's ``sosfilt`` on the whole signal at once;
- RingBuffer write + read bandwidth against a plain numpy copy of the same bytes.

Usage: ``python benchmarks/streaming.py [--duration 60] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# liblsl reads this when pylsl is imported: discovery stays on the loopback interface
os.environ["LSLAPICFG"] = str(Path(__file__).resolve().parents[1] / "tests" / "lsl_api.cfg")

import numpy as np  # noqa: E402

CONFIGS = ((128, 1000.0), (8, 250.0))
CHUNK_DURATION = 0.02  # s per push of the outlet and per filter/ring-buffer chunk
POLL_INTERVAL = 0.1  # s between two reads of the consumers' buffers
BUFSIZE = 5.0  # s of buffer in both consumers
CONNECT_MARGIN = 5.0  # s the outlet streams beyond the consumers' duration
QUICK_DURATION = 10.0


class CounterCheck:
    """Tracks a counter channel: samples received, lost (holes) and duplicated."""

    def __init__(self) -> None:
        self.n_received = 0
        self.n_lost = 0
        self.n_duplicated = 0
        self.last: int | None = None

    def add(self, counter: np.ndarray) -> None:
        if counter.size == 0:
            return
        counter = np.round(counter).astype(np.int64)
        previous = counter[0] - 1 if self.last is None else self.last
        steps = np.diff(counter, prepend=previous)
        self.n_lost += int(np.sum(steps[steps > 1] - 1))
        self.n_duplicated += int(np.sum(steps < 1))
        self.n_received += counter.size
        self.last = int(counter[-1])


# -- processes -------------------------------------------------------------------------------
def run_outlet(name: str, n_channels: int, sfreq: float, duration: float) -> None:
    """Stream a counter (channel 0) and noise, paced by the clock, for ``duration`` s."""
    import pylsl

    info = pylsl.StreamInfo(name, "EEG", n_channels, sfreq, pylsl.cf_float32, name)
    channels = info.desc().append_child("channels")
    for ch in range(n_channels):
        channel = channels.append_child("channel")
        channel.append_child_value("label", "COUNTER" if ch == 0 else f"EEG{ch:03d}")
        channel.append_child_value("type", "misc" if ch == 0 else "eeg")
        channel.append_child_value("unit", "" if ch == 0 else "volts")
    outlet = pylsl.StreamOutlet(info)
    noise = np.random.default_rng(0).standard_normal((int(sfreq), n_channels)).astype(np.float32)
    t0, lsl_t0, n_sent = time.monotonic(), pylsl.local_clock(), 0
    while n_sent < duration * sfreq:
        n_due = int((time.monotonic() - t0) * sfreq) - n_sent
        if n_due > 0:
            chunk = noise[np.arange(n_sent, n_sent + n_due) % len(noise)]
            chunk[:, 0] = np.arange(n_sent, n_sent + n_due)
            outlet.push_chunk(np.ascontiguousarray(chunk), lsl_t0 + (n_sent + n_due - 1) / sfreq)
            n_sent += n_due
        time.sleep(CHUNK_DURATION)


def consume_ddlive(name: str, duration: float) -> dict:
    from dd_live.sources.lsl import LSLSource
    from dd_live.stream import AcquisitionThread, RingBuffer

    source = LSLSource(name, timeout=10.0)
    raw = RingBuffer(source.info.n_channels, int(BUFSIZE * source.info.sfreq))
    acquisition = AcquisitionThread(source, raw)
    check = CounterCheck()
    acquisition.start()
    cpu0, t0, index = time.process_time(), time.monotonic(), 0
    while time.monotonic() - t0 < duration:
        time.sleep(POLL_INTERVAL)
        data, _, first = raw.since(index)
        check.add(data[0])
        index = first + data.shape[1]
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    acquisition.stop()
    return {"received": check.n_received, "lost": check.n_lost, "dup": check.n_duplicated,
            "cpu": cpu / wall}  # fmt: skip


def consume_mnelsl(name: str, duration: float) -> dict:
    from mne_lsl.stream import StreamLSL

    stream = StreamLSL(BUFSIZE, name=name, source_id=name).connect(timeout=10.0)
    check = CounterCheck()
    cpu0, t0 = time.process_time(), time.monotonic()
    while time.monotonic() - t0 < duration:
        time.sleep(POLL_INTERVAL)
        # the whole buffer, then what is newer than the last counter seen (reading only
        # n_new_samples races with the acquisition and would count false holes)
        data, stamps = stream.get_data(picks=[0])
        counter = data[0, stamps > 0]  # the buffer starts filled with zeros
        check.add(counter if check.last is None else counter[counter > check.last])
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    stream.disconnect()
    return {"received": check.n_received, "lost": check.n_lost, "dup": check.n_duplicated,
            "cpu": cpu / wall}  # fmt: skip


def lsl_round(n_channels: int, sfreq: float, duration: float) -> dict:
    """One outlet and both consumers at once, each in its own process."""
    name = f"ddlive-bench-{n_channels}x{int(sfreq)}-{os.getpid()}"
    me = [sys.executable, __file__]
    outlet = subprocess.Popen(
        me + ["--role", "outlet", "--name", name, "--n-channels", str(n_channels),
              "--sfreq", str(sfreq), "--duration", str(duration + CONNECT_MARGIN)]
    )  # fmt: skip
    consumers = {
        role: subprocess.Popen(
            me + ["--role", role, "--name", name, "--duration", str(duration)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for role in ("ddlive", "mnelsl")
    }
    results = {}
    for role, process in consumers.items():
        out, _ = process.communicate(timeout=duration + 60)
        results[role] = json.loads(out.strip().splitlines()[-1])
    outlet.wait(timeout=CONNECT_MARGIN + 30)
    return results


# -- in-process measurements -------------------------------------------------------------
def filter_throughput(n_channels: int, sfreq: float, seconds: float = 20.0) -> dict:
    from scipy import signal

    from dd_live.stream import StreamingFilter, design_filter

    sos = design_filter(sfreq, 5.0, min(95.0, 0.45 * sfreq), notch=50.0)
    data = np.random.default_rng(0).standard_normal((n_channels, int(seconds * sfreq)))

    def run(chunk_duration: float, dtype: type) -> float:
        chunk = int(chunk_duration * sfreq)
        filt = StreamingFilter(sos, n_channels, dtype=dtype)
        t0 = time.perf_counter()
        for start in range(0, data.shape[1], chunk):
            filt(data[:, start : start + chunk])
        return time.perf_counter() - t0

    streaming = run(CHUNK_DURATION, np.float64)
    t0 = time.perf_counter()
    signal.sosfilt(sos, data, axis=1)
    offline = time.perf_counter() - t0
    return {"x_realtime": seconds / streaming, "vs_offline": offline / streaming,
            "x_realtime_100ms": seconds / run(0.1, np.float64),
            "x_realtime_f32": seconds / run(CHUNK_DURATION, np.float32)}  # fmt: skip


def ring_bandwidth(n_channels: int, sfreq: float, seconds: float = 60.0) -> dict:
    from dd_live.stream import RingBuffer

    chunk_n = int(CHUNK_DURATION * sfreq)
    n_chunks = int(seconds / CHUNK_DURATION)
    chunk = np.random.default_rng(0).standard_normal((n_channels, chunk_n))
    stamps = np.arange(chunk_n) / sfreq
    buffer = RingBuffer(n_channels, int(BUFSIZE * sfreq))
    t0 = time.perf_counter()
    for _ in range(n_chunks):
        buffer.write(chunk, stamps)
        buffer.latest(chunk_n)
    ring = time.perf_counter() - t0
    plain = np.zeros((n_channels, int(BUFSIZE * sfreq)))
    plain_t = np.zeros(plain.shape[1])
    t0 = time.perf_counter()
    pos = 0
    for _ in range(n_chunks):
        if pos + chunk_n > plain.shape[1]:
            pos = 0
        plain[:, pos : pos + chunk_n] = chunk
        plain_t[pos : pos + chunk_n] = stamps
        plain[:, pos : pos + chunk_n].copy()
        plain_t[pos : pos + chunk_n].copy()
        pos += chunk_n
    numpy = time.perf_counter() - t0
    n_bytes = 2 * n_chunks * (chunk.nbytes + stamps.nbytes)
    return {"ring_gbps": n_bytes / ring / 1e9, "numpy_gbps": n_bytes / numpy / 1e9,
            "ratio": numpy / ring}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per LSL round")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION:g} s rounds")
    parser.add_argument("--role", choices=("outlet", "ddlive", "mnelsl"), help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--n-channels", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sfreq", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "outlet":
        run_outlet(args.name, args.n_channels, args.sfreq, args.duration)
        return
    if args.role is not None:
        consume = consume_ddlive if args.role == "ddlive" else consume_mnelsl
        print(json.dumps(consume(args.name, args.duration)))
        return
    duration = QUICK_DURATION if args.quick else args.duration
    print(f"dd-live streaming benchmark, {duration:g} s per LSL round, {os.cpu_count()} cores")
    header = (
        f"{'stream':>12} | {'lost dd/mne':>11} | {'recv dd/mne':>15} | {'CPU% dd':>7} | "
        f"{'CPU% mne':>8} | {'mne/dd':>6} | {'filter xRT':>10} | {'vs offline':>10} | "
        f"{'ring GB/s':>9} | {'ring/numpy':>10} | {'xRT 100ms':>9} | {'xRT f32':>7}"
    )
    print(header)
    print("-" * len(header))
    for n_channels, sfreq in CONFIGS:
        lsl = lsl_round(n_channels, sfreq, duration)
        filt = filter_throughput(n_channels, sfreq)
        ring = ring_bandwidth(n_channels, sfreq)
        dd, mne = lsl["ddlive"], lsl["mnelsl"]
        print(
            f"{f'{n_channels} x {sfreq:g}':>12} | {dd['lost']:>5}/{mne['lost']:<5} | "
            f"{dd['received']:>7}/{mne['received']:<7} | {100 * dd['cpu']:>7.1f} | "
            f"{100 * mne['cpu']:>8.1f} | {mne['cpu'] / max(dd['cpu'], 1e-9):>6.2f} | "
            f"{filt['x_realtime']:>10.0f} | {filt['vs_offline']:>10.3f} | "
            f"{ring['ring_gbps']:>9.2f} | {ring['ratio']:>10.2f} | "
            f"{filt['x_realtime_100ms']:>9.0f} | {filt['x_realtime_f32']:>7.0f}"
        )
    print(
        "lost: counter holes after connecting (must be 0); CPU%: process CPU time / wall of "
        "each consumer; filter xRT: seconds of signal filtered per second (20 ms chunks); "
        "vs offline: sosfilt on the whole signal time / chunked time; ring/numpy: "
        "RingBuffer write+latest bandwidth / plain numpy copies of the same bytes; "
        "xRT 100ms: the filter on 100 ms chunks; xRT f32: StreamingFilter(dtype=float32)."
    )


if __name__ == "__main__":
    main()
