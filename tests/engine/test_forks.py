"""The forked worker pool of local ``processes`` runs: results, errors, dead workers, clean ends."""

from __future__ import annotations

import fcntl
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import pandas as pd
import pytest

import dask_features as dfe
from dask_features.engine import forks, run, streams
from dask_features.engine.forks import ForkPool, WorkerLostError
from dask_features.engine.identity import SourceIdentity

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the fork pool is used on Linux only")


def _kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)


def _exit_now(code: int) -> None:
    os._exit(code)


def _a_lock() -> object:
    return threading.Lock()  # cannot be pickled back to the parent


@pytest.fixture
def pool() -> Iterator[ForkPool]:
    p = ForkPool(2)
    yield p
    p.shutdown(wait=True, cancel_futures=True)


def test_results_come_from_other_processes(pool: ForkPool) -> None:
    futures = [pool.submit(math.factorial, n) for n in range(20)]
    assert [f.result(timeout=60) for f in futures] == [math.factorial(n) for n in range(20)]
    assert pool.submit(int, "ff", base=16).result(timeout=60) == 255
    pids = {pool.submit(os.getpid).result(timeout=60) for _ in range(4)}
    assert os.getpid() not in pids
    assert pids <= {w.pid for w in pool._workers}


@pytest.mark.parametrize(
    ("func", "args", "error", "message"),
    [
        (math.factorial, (-1,), ValueError, "factorial() not defined for negative values"),
        (int, ("x",), ValueError, "invalid literal for int() with base 10: 'x'"),
        (divmod, (1, 0), ZeroDivisionError, "integer division or modulo by zero"),
    ],
)
def test_a_task_error_comes_back_as_raised(
    pool: ForkPool, func: object, args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        pool.submit(func, *args).result(timeout=60)  # type: ignore[arg-type]
    assert str(raised.value) == message
    assert pool.submit(abs, -3).result(timeout=60) == 3  # the worker goes on


def _holds_lock(obj: object) -> bool:
    return bool(obj.locked())  # type: ignore[attr-defined]


def test_shared_objects_reach_workers_without_being_pickled() -> None:
    """A lock cannot be pickled: a task refers to the shared one by identity, wherever it is in its
    arguments; any other lock is still an error."""
    lock = threading.Lock()
    lock.acquire()  # its state as forked is what the worker sees
    p = ForkPool(2, shared=(lock, "unused"))
    try:
        assert p.submit(_holds_lock, lock).result(timeout=60) is True
        assert p.submit(_holds_lock, obj=lock).result(timeout=60) is True
        assert p.submit(len, [lock, lock, 3]).result(timeout=60) == 3
        with pytest.raises(TypeError, match="lock"):
            p.submit(_holds_lock, threading.Lock())
    finally:
        p.shutdown(wait=True, cancel_futures=True)
        lock.release()


def test_a_result_that_cannot_be_sent_back_is_an_error_not_a_hang(pool: ForkPool) -> None:
    with pytest.raises(TypeError, match="cannot send the task's result"):
        pool.submit(_a_lock).result(timeout=60)
    assert pool.submit(abs, -3).result(timeout=60) == 3  # the worker goes on


@pytest.mark.parametrize(
    ("func", "arg", "how"),
    [(_kill_self, signal.SIGKILL, "was killed by SIGKILL"), (_exit_now, 3, "exited with code 3")],
)
def test_a_dead_worker_fails_only_the_task_it_ran(pool: ForkPool, func: object, arg: int, how: str) -> None:
    doomed = pool.submit(func, arg)  # type: ignore[arg-type]
    others = [pool.submit(math.factorial, n) for n in range(10)]
    with pytest.raises(WorkerLostError, match=rf"^worker process \d+ {how}") as raised:
        doomed.result(timeout=60)
    assert isinstance(raised.value, ChildProcessError)
    assert [f.result(timeout=60) for f in others] == [math.factorial(n) for n in range(10)]


def test_tasks_fail_once_every_worker_is_gone() -> None:
    pool = ForkPool(1)
    doomed = pool.submit(_exit_now, 1)
    stranded = pool.submit(abs, -1)
    with pytest.raises(WorkerLostError):
        doomed.result(timeout=60)
    with pytest.raises(WorkerLostError, match="every worker process of the pool ended"):
        stranded.result(timeout=60)
    pool.shutdown()


def test_shutdown_cancels_what_no_worker_holds() -> None:
    pool = ForkPool(1)
    held = [pool.submit(pow, 2, 10) for _ in range(forks.PER_WORKER)]
    waiting = pool.submit(pow, 3, 3)
    assert waiting.cancel() or waiting.running()  # not sent yet: the worker holds PER_WORKER
    pool.shutdown(wait=True, cancel_futures=True)
    assert [f.result(timeout=60) for f in held] == [1024] * forks.PER_WORKER
    with pytest.raises(CancelledError):
        waiting.result(timeout=60)
    with pytest.raises(RuntimeError, match="shut down"):  # PoolClosedError
        pool.submit(abs, 1)


def test_shutdown_runs_what_was_submitted() -> None:
    pool = ForkPool(1)
    futures = [pool.submit(pow, 2, n) for n in range(6)]
    pool.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == [2**n for n in range(6)]


def test_forks_only_without_other_threads() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not forks.can_fork()  # a child could wait forever for a lock this thread held
    finally:
        stop.set()
        other.join()


@pytest.mark.parametrize("chunk_steps", ["auto", 5], ids=["whole-files", "chunks"])
@pytest.mark.parametrize("fork", [True, False], ids=["fork-pool", "standard-pool"])
def test_process_runs_equal_sync_runs_and_leave_no_lock_held(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool, chunk_steps: int | str
) -> None:
    monkeypatch.setattr(streams, "can_fork", lambda: fork)
    ref = dfe.extract(dataset, "v2_transfer_basic", tmp_path / "sync", scheduler="sync", progress=False)
    res = dfe.extract(
        dataset,
        "v2_transfer_basic",
        tmp_path / "p",
        scheduler="processes",
        workers=2,
        chunk_steps=chunk_steps,  # type: ignore[arg-type]
        progress=False,
    )
    assert ref.ok, ref.summary()
    assert res.ok, res.summary()
    assert res.scheduler == "processes (asked for)"
    for name in ("steps", "errors"):
        got = dfe.read_features(tmp_path / "p", "v2_transfer_basic", table=name)
        want = dfe.read_features(tmp_path / "sync", "v2_transfer_basic", table=name)
        pd.testing.assert_frame_equal(
            got.sort_values(list(got.columns[:4])).reset_index(drop=True),
            want.sort_values(list(want.columns[:4])).reset_index(drop=True),
        )
    # The workers let go of the output folder's lock before extract returned: another run may
    # switch the folder's version right away.
    with open(tmp_path / "p" / ".v2_transfer_basic.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_workers_hold_no_file_once_shut_down(tmp_path: Path) -> None:
    # A run holds its output folder's lock; forked workers inherit it and must let go of it by the
    # time the run returns, not some milliseconds later while their process is torn down.
    with open(tmp_path / "lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_SH)
        pool = ForkPool(2)
        assert [pool.submit(abs, -n).result(timeout=60) for n in range(4)] == [0, 1, 2, 3]
        pool.shutdown(wait=True)
    with open(tmp_path / "lock", "a+") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _refault_pages(n_bytes: int) -> int:
    """Minor page faults of filling an array of ``n_bytes`` that was just allocated and freed."""
    import resource

    import numpy as np

    np.ones(n_bytes // 8)  # allocated and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(n_bytes // 8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not os.confstr("CS_GNU_LIBC_VERSION"), reason="glibc's malloc settings")
def test_workers_reuse_freed_arrays(pool: ForkPool) -> None:
    # 8 MiB is 2,048 pages; with glibc's defaults the second array faults again on ~500 of them.
    assert pool.submit(_refault_pages, 8 * 2**20).result(timeout=60) < 200


def test_the_caller_takes_only_what_no_worker_holds() -> None:
    pool = ForkPool(1)
    try:
        held = [pool.submit(pow, 2, 10) for _ in range(forks.PER_WORKER)]
        waiting = pool.submit(os.getpid)
        taken = pool.take()
        assert taken is not None
        assert taken[0] is waiting  # the worker holds PER_WORKER already
        future, fn, args, kwargs = taken
        assert future.running()
        assert pool.take() is None
        future.set_result(fn(*args, **kwargs))
        assert waiting.result(timeout=0) == os.getpid()
        assert [f.result(timeout=60) for f in held] == [1024] * forks.PER_WORKER
    finally:
        pool.shutdown(wait=True)


@pytest.mark.parametrize("chunk_steps", ["auto", 5], ids=["whole-files", "chunks"])
def test_a_process_run_this_process_joins_forks_one_worker_less(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_steps: int | str
) -> None:
    made: list[int] = []
    taken: list[object] = []

    class Recording(ForkPool):
        def __init__(self, n: int, shared: tuple[object, ...] = ()) -> None:
            made.append(n)
            super().__init__(n, shared)

        def take(self) -> object:
            task = super().take()
            if task is not None:
                taken.append(task)
            return task

    monkeypatch.setattr(streams, "ForkPool", Recording)
    monkeypatch.setattr(streams, "can_fork", lambda: True)  # other tests' clusters run threads here
    config = dfe.load_config("v2_transfer_basic")
    jobs = [
        run.make_job(dfe.open_experiment(p), config, p.stem, chunk_steps, SourceIdentity.planned(p))
        for p in sorted(dataset.glob("*.h5"))
    ]
    folder = tmp_path / "out"
    folder.mkdir()
    outcomes = list(
        streams.stream_local(
            iter([[j] for j in jobs]), config, folder, "step", 4, "processes", 2, caller_runs=True
        )
    )
    assert made == [1]
    assert taken  # this process ran some of the tasks
    assert sorted(job.stem for job, value, _ in outcomes if type(value).__name__ == "Written") == sorted(
        j.stem for j in jobs
    )
