"""Forked worker processes fed through pipes: the local ``processes`` scheduler where ``fork`` is safe.

A first call pays for its process pool. Measured in a fresh process after ``import dask_features``
on 2 cores, two workers returning their first (empty) results:

* ``concurrent.futures.ProcessPoolExecutor``: 31-38 ms, then 7-11 ms to shut down. Importing it
  loads ``multiprocessing``, its connections and ``tempfile`` (12-15 ms), and every call is relayed
  by a manager thread and a queue feeder thread before a worker sees it.
* :class:`ForkPool`: 10-14 ms, then 2-6 ms (``os.fork`` per worker, one pipe each way).

On a 0.2 s first call that is a tenth of it. The workers are forked from this process as it is
(config loaded, extractors imported), so they load nothing again.

How it works: every task is pickled with its function (by reference) and written, length first, to
the pipe of the worker with the fewest outstanding tasks. A worker holds at most
:data:`PER_WORKER` of them (one running, one waiting, so it never waits for the parent between
tasks); the others wait here and go to the first worker that frees a place, so slow tasks do not
pile up behind one worker. One thread per worker reads its results and resolves their futures.
A worker that dies fails only the task it was running (:class:`WorkerLostError`); its waiting task
goes to another worker. Closing the pipes ends the workers (also when this process dies). The
caller may run a task no worker holds yet itself (:meth:`ForkPool.take`).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import io
import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from dask_features.engine.cluster import MALLOC_THRESHOLD
from dask_features.errors import DaskFeaturesError

__all__ = ["PER_WORKER", "ForkPool", "PoolClosedError", "WorkerLostError", "can_fork"]

#: Tasks sent to one worker at a time: the one it runs and the next one.
PER_WORKER = 2
_LENGTH = struct.Struct("<Q")
#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


class WorkerLostError(DaskFeaturesError, ChildProcessError):
    """A worker process ended (killed, crashed) while it ran a task."""


class PoolClosedError(DaskFeaturesError, RuntimeError):
    """A task submitted to a pool that was shut down."""


def can_fork() -> bool:
    """Whether :class:`ForkPool` may be used here.

    Linux only (macOS system libraries are not fork-safe, Windows has no ``fork``), and only from a
    process that runs no other Python thread: a child forked while another thread holds a lock
    (HDF5's, logging's) would wait for it forever. Elsewhere the standard process pool and its
    platform's start method are used.
    """
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    # A reader of an earlier pool only waits for its worker to exit; it holds nothing a child needs.
    return sys.platform == "linux" and all(isinstance(t, _Reader) for t in others)


def _keep_freed_memory() -> None:
    """Keep freed arrays up to :data:`~dask_features.engine.cluster.MALLOC_THRESHOLD` on this
    worker's heap for the next task (glibc; elsewhere nothing).

    By default glibc maps every array above 128 KiB afresh and unmaps it when freed, until its
    dynamic threshold has grown: every task paid its page faults again. Measured on
    v2_transfer_basic, 400 steps x 301 points per file: ~920 page faults and 39-41 ms of CPU per
    file in a worker, ~10 and 26-33 ms with these settings (the cluster's workers get the same).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    # The mmap threshold first: setting either one switches glibc's dynamic threshold off.
    if mallopt(_M_MMAP_THRESHOLD, MALLOC_THRESHOLD) == 1:
        mallopt(_M_TRIM_THRESHOLD, MALLOC_THRESHOLD)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 1 << 16


def _write(fd: int, data: bytes) -> None:
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``, or None at end of file. Never reads past them: the next message
    stays in the pipe."""
    parts = []
    while n:
        part = os.read(fd, min(n, 1 << 20))
        if not part:
            return None
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _read(fd: int) -> bytes | None:
    header = _read_exactly(fd, _LENGTH.size)
    return None if header is None else _read_exactly(fd, _LENGTH.unpack(header)[0])


class _TaskPickler(pickle.Pickler):
    """Pickles the pool's shared objects as their index: the worker has them since it was forked."""

    def __init__(self, file: io.BytesIO, shared: dict[int, int]) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self._shared = shared

    def persistent_id(self, obj: Any) -> int | None:
        return self._shared.get(id(obj))


class _TaskUnpickler(pickle.Unpickler):
    """Unpickles what :class:`_TaskPickler` made, in a worker holding the same shared objects."""

    def __init__(self, data: bytes, shared: tuple[Any, ...]) -> None:
        super().__init__(io.BytesIO(data))
        self._shared = shared

    def persistent_load(self, pid: Any) -> Any:
        return self._shared[pid]


def _serve(tasks: int, results: int, shared: tuple[Any, ...]) -> None:
    """A worker's loop: run tasks until the parent closes the pipe or the run is interrupted."""
    while (data := _read(tasks)) is not None:
        try:
            func, args, kwargs = _TaskUnpickler(data, shared).load()
            value: tuple[bool, Any] = (True, func(*args, **kwargs))
        except BaseException as exc:  # sent back, as a process pool does
            value = (False, exc)
        try:
            out = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable value or exception
            out = pickle.dumps(
                (False, TypeError(f"cannot send the task's result: {type(exc).__name__}: {exc}"))
            )
        _write(results, out)
        if not value[0] and not isinstance(value[1], Exception):
            return  # Ctrl-C, SIGTERM (the CLI raises it like Ctrl-C): no next task


#: A task: its future, its pickled ``(func, args, kwargs)`` and the same unpickled (for
#: :meth:`ForkPool.take`).
_Task = tuple[Future[Any], bytes, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]


@dataclass
class _Worker:
    pid: int
    tasks: int  # our end of its task pipe (-1 once closed: the worker ends after the tasks sent)
    results: int  # our end of its result pipe
    sent: collections.deque[_Task] = field(default_factory=collections.deque)
    alive: bool = True
    done: threading.Event = field(default_factory=threading.Event)  # ended, holding no file


class _Reader(threading.Thread):
    """The thread that receives one worker's results."""

    def __init__(self, receive: Callable[[_Worker], None], worker: _Worker) -> None:
        super().__init__(target=receive, args=(worker,), name=f"fork-pool-{worker.pid}", daemon=True)


class ForkPool(Executor):
    """An executor of ``n`` forked worker processes.

    Parameters
    ----------
    n : int
        Worker processes, forked now.
    shared : sequence, optional
        Objects the workers inherit, which tasks may refer to (by identity) without sending them
        again: the run's configuration, for one (a task's pickle shrinks from ~3.5 kB to ~0.5 kB,
        and the worker does not rebuild it per task). They must not change once the pool exists.
    """

    def __init__(self, n: int, shared: Sequence[Any] = ()) -> None:
        self._shared = tuple(shared)  # held: their ids stay theirs while the pool lives
        self._shared_ids = {id(obj): i for i, obj in enumerate(self._shared)}
        self._lock = threading.RLock()  # a future's callbacks may submit
        self._queue: collections.deque[_Task] = collections.deque()
        self._closed = False
        self._workers: list[_Worker] = []
        try:
            for _ in range(n):
                self._workers.append(self._fork())
        except BaseException:  # cannot fork (memory, process limit): end the ones started
            for worker in self._workers:
                os.close(worker.tasks)
                os.close(worker.results)
                _reap(worker.pid)
            raise
        self._readers = [_Reader(self._receive, w) for w in self._workers]
        for reader in self._readers:
            reader.start()

    def _fork(self) -> _Worker:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # else the child would print the parent's buffers again
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the caller's frames
            code = 0
            try:
                _keep_freed_memory()
                for fd in (task_w, result_r, *(fd for w in self._workers for fd in (w.tasks, w.results))):
                    os.close(fd)
                _serve(task_r, result_w, self._shared)
            except BaseException:
                code = 1
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                # Done: let go of every file now (the output folder's lock, the parent's HDF5 files),
                # the result pipe last, so the parent knows it at end of file; tearing down the
                # process's memory then takes several milliseconds nobody waits for.
                os.closerange(3, result_w)
                os.closerange(result_w + 1, _max_fd())
                os.close(result_w)
                os._exit(code)
        os.close(task_r)
        os.close(result_w)
        return _Worker(pid, task_w, result_r)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """``fn(*args, **kwargs)`` in a worker; all must pickle (``fn`` by reference)."""
        future: Future[Any] = Future()
        buffer = io.BytesIO()
        _TaskPickler(buffer, self._shared_ids).dump((fn, args, kwargs))
        data = buffer.getvalue()
        with self._lock:
            if self._closed:
                raise PoolClosedError("cannot submit to a pool that was shut down")
            self._queue.append((future, data, (fn, args, kwargs)))
            self._dispatch()
        return future

    def take(self) -> tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None:
        """A submitted task no worker holds yet, for the caller to run itself (its future is then
        the caller's to resolve), or None when every task is with a worker."""
        with self._lock:
            while self._queue:
                future, _, (fn, args, kwargs) = self._queue.popleft()
                if future.running() or future.set_running_or_notify_cancel():
                    self._dispatch()  # closes the pipes of a pool shut down with nothing left
                    return future, fn, args, kwargs
            return None

    def _dispatch(self) -> None:
        """Send waiting tasks to workers with a free place (lock held)."""
        while self._queue:
            free = [w for w in self._workers if w.alive and w.tasks >= 0 and len(w.sent) < PER_WORKER]
            if not free:
                if not any(w.alive for w in self._workers):
                    self._fail_queued()
                return
            worker = min(free, key=lambda w: len(w.sent))
            task = self._queue.popleft()
            # A task sent back by a worker that died before starting it is already running.
            if not (task[0].running() or task[0].set_running_or_notify_cancel()):
                continue  # cancelled while it waited
            try:
                _write(worker.tasks, task[1])
            except OSError:  # the worker is gone (its reader reports it); try another one
                self._queue.appendleft(task)
                worker.alive = False
                continue
            worker.sent.append(task)
        if self._closed:  # nothing left to send: the workers end once they are done
            for worker in self._workers:
                if worker.tasks >= 0:
                    os.close(worker.tasks)
                    worker.tasks = -1

    def _fail_queued(self) -> None:
        while self._queue:
            future, *_ = self._queue.popleft()
            if future.running() or future.set_running_or_notify_cancel():
                future.set_exception(WorkerLostError("every worker process of the pool ended"))

    def _receive(self, worker: _Worker) -> None:
        """Resolve ``worker``'s futures as its results come, until it ends."""
        while (data := _read(worker.results)) is not None:
            with self._lock:
                future, *_ = worker.sent.popleft()
                self._dispatch()
            try:
                ok, value = pickle.loads(data)
            except BaseException as exc:
                ok, value = False, exc
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        os.close(worker.results)
        with self._lock:
            worker.alive = False
            lost = worker.sent.popleft()[0] if worker.sent else None
            # It died: the task it ran fails; the one waiting goes to another worker.
            self._queue.extendleft(reversed(worker.sent))
            worker.sent.clear()
            self._dispatch()
        if lost is not None:
            status = _reap(worker.pid)
            lost.set_exception(WorkerLostError(f"worker process {worker.pid} {_how(status)}"))
            worker.done.set()
            return
        worker.done.set()
        _reap(worker.pid)  # it has let go of every file: reaped without anyone waiting

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the workers end once they have run the tasks submitted (or, with ``cancel_futures``,
        the ones they already hold); ``wait`` until they are done and hold no file."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                while self._queue:
                    future, *_ = self._queue.popleft()
                    if not future.cancel():  # taken back from a worker that died: not run
                        future.set_exception(WorkerLostError("the pool was shut down before it ran"))
            self._dispatch()
        if wait:
            for worker in self._workers:
                worker.done.wait()


def _reap(pid: int) -> int | None:
    """Wait for ``pid`` to end; its wait status (None if it was reaped elsewhere)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:  # SIGCHLD ignored by the application: the kernel reaped it
        return None


def _how(status: int | None) -> str:
    """How a worker ended, from its wait status."""
    if status is None:
        return "ended while it ran a task"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(sig).name}"
        return f"was killed by signal {sig}"
    return f"exited with code {os.waitstatus_to_exitcode(status)} while it ran a task"
