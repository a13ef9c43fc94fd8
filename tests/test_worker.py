"""The generation worker: latest wins, drops are counted, errors are reported, never fatal."""

import threading

from dd_live.worker import GenerationWorker


def test_latest_wins_and_drops_are_counted():
    done, dropped = [], []
    worker = GenerationWorker(lambda job: job * 10, on_result=lambda j, r: done.append(r),
                              on_drop=dropped.append)
    assert worker.submit(1) is False
    assert worker.submit(2) is True  # 1 had not started: dropped
    assert worker.submit(3) is True
    assert worker.step() is True
    assert worker.step() is False  # nothing pending
    assert done == [30]
    assert dropped == [1, 2]
    assert (worker.n_submitted, worker.n_dropped, worker.n_done) == (3, 2, 1)


def test_an_error_is_reported_and_the_worker_goes_on(caplog):
    errors = []

    def process(job):
        if job == "bad":
            raise RuntimeError("sampler exploded")
        return job

    results = []
    worker = GenerationWorker(process, on_result=lambda j, r: results.append(r),
                              on_error=lambda j, e: errors.append((j, str(e))))
    worker.submit("bad")
    worker.step()
    worker.submit("good")
    worker.step()
    assert errors == [("bad", "sampler exploded")]
    assert results == ["good"]
    assert worker.n_failed == 1
    assert "generation failed" in caplog.text


def test_thread_drains_on_stop():
    gate = threading.Event()
    started = threading.Event()
    results = []

    def slow(job):
        started.set()
        gate.wait(5)
        return job

    worker = GenerationWorker(slow, on_result=lambda j, r: results.append(r)).start()
    worker.submit("a")
    assert started.wait(5)
    worker.submit("b")  # pending while "a" runs
    gate.set()
    worker.stop(drain=True)
    assert results == ["a", "b"]
    assert not worker.running


def test_a_failing_error_callback_does_not_end_the_thread(caplog):
    """The worker thread outlives an ``on_error`` callback that raises: the next job runs."""
    results = []
    second_done = threading.Event()

    def process(job):
        if job == "bad":
            raise RuntimeError("sampler exploded")
        return job

    def on_error(job, exc):
        raise ValueError("the error observer is broken too")

    def on_result(job, result):
        results.append(result)
        second_done.set()

    worker = GenerationWorker(process, on_result=on_result, on_error=on_error).start()
    try:
        worker.submit("bad")
        assert worker.drain(5)
        worker.submit("good")
        assert second_done.wait(5), "the worker thread died with the error callback"
        assert results == ["good"]
        assert worker.running
        assert worker.n_failed == 1
        assert "error callback failed" in caplog.text
    finally:
        worker.stop()
