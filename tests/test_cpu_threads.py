"""Training and scoring leave the cores other programs use alone (alwidget.cpu_threads)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from alwidget import cpu_threads
from alwidget.errors import InvalidArgumentError
from alwidget.predict import predict
from alwidget.training import TrainConfig, train_model


@pytest.fixture
def two_threads_by_default(monkeypatch):
    """torch set to 2 threads outside any job (the tests run it on 1), a 2-core machine, no
    remembered reading and no fixed count; torch's setting is put back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.delenv(cpu_threads.THREADS_VARIABLE, raising=False)
    monkeypatch.setattr(cpu_threads, "cpu_count", lambda: 2)
    monkeypatch.setattr(cpu_threads, "_last_reading", None)
    monkeypatch.setattr(cpu_threads, "_THREADS_AT_IMPORT", 2)
    yield
    torch.set_num_threads(before)


def _elsewhere(monkeypatch, busy):
    monkeypatch.setattr(cpu_threads, "_last_reading", None)
    monkeypatch.setattr(cpu_threads, "busy_cpus_elsewhere", lambda: busy)


@pytest.mark.parametrize(("busy", "expected"), [(0, 2), (1, 1), (5, 1), (None, 2)])
def test_a_job_takes_the_cores_left_free_and_gives_the_setting_back(
    two_threads_by_default, monkeypatch, busy, expected
):
    _elsewhere(monkeypatch, busy)
    with cpu_threads.threads_for_jobs() as threads:
        assert threads == expected == torch.get_num_threads()
    assert torch.get_num_threads() == 2


def test_never_more_threads_than_torch_had_outside_jobs(two_threads_by_default, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(cpu_threads, "cpu_count", lambda: 8)
    _elsewhere(monkeypatch, 0)
    with cpu_threads.threads_for_jobs() as threads:
        assert threads == 1


def test_a_fixed_count_ignores_the_load(two_threads_by_default, monkeypatch):
    _elsewhere(monkeypatch, 5)
    monkeypatch.setenv(cpu_threads.THREADS_VARIABLE, "2")
    with cpu_threads.threads_for_jobs() as threads:
        assert threads == 2 == torch.get_num_threads()


def test_a_background_job_neither_leaks_its_count_nor_keeps_it_for_the_next_job(
    two_threads_by_default, monkeypatch
):
    """OpenMP keeps a count per thread: a job on a worker thread is capped by the count at
    import, and the worker gets that count back, whatever a busy machine made it use."""
    _elsewhere(monkeypatch, 1)
    inside, release = threading.Event(), threading.Event()
    counts = {}

    def worker():
        with cpu_threads.threads_for_jobs():
            counts["busy machine"] = torch.get_num_threads()
            inside.set()
            release.wait(10)
        counts["after"] = torch.get_num_threads()
        _elsewhere(monkeypatch, 0)
        with cpu_threads.threads_for_jobs():
            counts["quiet machine"] = torch.get_num_threads()

    job = threading.Thread(target=worker)
    job.start()
    assert inside.wait(10)
    with cpu_threads.threads_for_jobs():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2, "the main thread's own count, while the job runs"
    release.set()
    job.join(10)
    assert counts == {"busy machine": 1, "after": 2, "quiet machine": 2}
    assert torch.get_num_threads() == 2


def test_a_process_spinning_on_another_core_is_counted():
    if cpu_threads.busy_cpus_elsewhere() is None:
        pytest.skip("no /proc/loadavg here")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert cpu_threads.busy_cpus_elsewhere() >= 1
    finally:
        spinner.kill()
        spinner.wait()


def test_training_and_scoring_run_on_the_free_cores(two_threads_by_default, monkeypatch):
    _elsewhere(monkeypatch, 1)
    seen = []
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))
    inputs = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    targets = (inputs[:, 0] > 0).long().numpy()
    train_model(
        model,
        inputs,
        targets,
        TrainConfig(min_steps=3, max_steps=3, batch_size=8),
        seed=0,
        device=torch.device("cpu"),
        progress=lambda _: seen.append(torch.get_num_threads()),
    )
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2

    def inputs_at(positions):
        seen.append(torch.get_num_threads())
        return inputs[torch.as_tensor(positions)]

    seen.clear()
    predict(model, inputs_at, np.arange(40), mc_samples=3)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_fixed_count_is_refused_naming_the_variable(
    two_threads_by_default, monkeypatch, value
):
    monkeypatch.setenv(cpu_threads.THREADS_VARIABLE, value)
    with pytest.raises(InvalidArgumentError, match="ALWIDGET_THREADS") as caught:
        with cpu_threads.threads_for_jobs():
            pass
    assert repr(value) in str(caught.value)
    assert torch.get_num_threads() == 2


def test_a_job_inside_a_job_keeps_the_outer_count_on_a_worker_thread(
    two_threads_by_default, monkeypatch
):
    _elsewhere(monkeypatch, 1)
    counts = []

    def worker():
        with cpu_threads.threads_for_jobs():
            with cpu_threads.threads_for_jobs():
                counts.append(torch.get_num_threads())
            counts.append(torch.get_num_threads())
        counts.append(torch.get_num_threads())

    job = threading.Thread(target=worker)
    job.start()
    job.join(10)
    assert counts == [1, 1, 2]


def test_one_lapack_thread_limits_numpy_blas_inside_and_restores_after():
    from threadpoolctl import threadpool_info

    from alwidget.blas_threads import one_lapack_thread

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    np.linalg.svd(np.ones((4, 4)))  # numpy's BLAS is loaded
    before = blas_threads()
    assert before
    with one_lapack_thread():
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
