"""Real process faults against the kNN store: owners killed with SIGKILL or ``os._exit``, a full disk.

1. A temporary store (``KNNStore.temporary``) whose process was killed is removed later, by
   :func:`knn_store.cleanup_temporary`, by the next ``KNNStore.temporary`` or by
   ``knn-store prune --temporary``; a store whose process is alive never is.
2. A write that runs out of space raises :class:`knn_store.StoreFullError` (also an ``OSError``) naming
   the store, leaves no partial entry and no temporary directory, and the same ``ensure`` succeeds once
   space is available. "Disk full" is real, without mocks: the writing process runs with
   ``RLIMIT_FSIZE`` so that the kernel fails writes past the limit with ``EFBIG``; this stands in for
   ``ENOSPC``, which takes the same code path. When the tests run as root, a tiny tmpfs gives a genuine
   ``ENOSPC`` as well.

Covered elsewhere and not repeated here: readers racing writers never see a partial entry
(``tests/knn_store/test_race.py``), and a truncated or modified entry on disk is detected and
recomputed (``tests/knn_store/test_store.py::test_corrupt_entry_is_detected_and_recomputed``).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from knn_store import KNNStore, KnnStoreError, StoreFullError, cleanup_temporary, load
from knn_store.cli import main
from knn_store.neighbors import exact_knn, prepare_features
from knn_store.store.keys import LAYOUT_VERSION
from knn_store.store.memo import clear_memo
from tests._mounts import tmpfs

#: Seconds any child may take; generous for 2 shared cores (imports of numpy and zarr dominate).
CHILD_TIMEOUT = 60

#: Child that opens a temporary store under argv[1], publishes an entry, reports the store path on
#: stdout, then waits for a command on stdin: "exit" (``os._exit``: no cleanup code runs), "wait"
#: (block until killed) or "use" (publish and read another entry, then leave normally).
OWNER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from knn_store import KNNStore, load

    x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    with KNNStore.temporary(dir=sys.argv[1], backend="numpy") as store:
        store.ensure(x, 5)
        print(store.root, flush=True)
        command = sys.stdin.readline().strip()
        if command == "exit":
            os._exit(3)
        if command == "wait":
            sys.stdin.readline()
        ref = store.ensure(x + 1, 4)
        assert load(ref, 4)[0].shape == (200, 4)
        print("used", flush=True)
    """
)


def _env() -> dict[str, str]:
    # No .pyc writes from children: one running under RLIMIT_FSIZE must fail only where the test wants.
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


class Owner:
    """A child process owning something on disk: a temporary store (:data:`OWNER`) or a write (:data:`WRITER`).

    Parameters
    ----------
    *args
        Command-line arguments of the script.
    script : str, default OWNER
        Python source run by the child; it must print one path (``self.path``) once that path exists.
    env : mapping, optional
        Extra environment variables.
    """

    def __init__(self, *args: object, script: str = OWNER, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**_env(), **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line, f"owner process failed to start (exit code {self.proc.wait(CHILD_TIMEOUT)})"
        self.path = Path(line)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL the process wherever it is and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(CHILD_TIMEOUT) == -signal.SIGKILL

    def crash(self, how: str) -> None:
        """End the process without running any cleanup code and reap it."""
        if how == "SIGKILL":
            self.send("wait")
            self.kill()
        else:
            self.send("exit")
            assert self.proc.wait(CHILD_TIMEOUT) == 3

    def use_and_leave(self) -> str:
        """Let the owner use its store again and exit normally; returns its last stdout line."""
        out, _ = self.proc.communicate("use\n", timeout=CHILD_TIMEOUT)
        assert self.proc.returncode == 0
        return out.strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(CHILD_TIMEOUT)


@pytest.fixture
def owners() -> Iterator[list[Owner]]:
    """Owner processes started by a test; any still running at the end are killed."""
    started: list[Owner] = []
    yield started
    for owner in started:
        owner.close()


def _orphan(parent: Path, owners: list[Owner], how: str = "SIGKILL") -> Path:
    """A temporary store whose owner process was killed; checks it really was left behind."""
    owner = Owner(parent)
    owners.append(owner)
    owner.crash(how)
    assert (owner.path / f"v{LAYOUT_VERSION}").is_dir(), (
        "the killed process should have left its store behind"
    )
    return owner.path


@pytest.mark.parametrize("how", ["SIGKILL", "os._exit"])
def test_store_of_a_killed_process_is_removed_and_a_live_one_kept(
    tmp_path: Path, owners: list[Owner], how: str
) -> None:
    live = Owner(tmp_path)
    owners.append(live)
    orphan = _orphan(tmp_path, owners, how)
    # A directory of an older version (no owner record) or of someone else: its owner cannot be told.
    foreign = tmp_path / "knn_store_foreign"
    (foreign / f"v{LAYOUT_VERSION}").mkdir(parents=True)

    assert cleanup_temporary(tmp_path) == [str(orphan)]

    assert not orphan.exists()
    assert foreign.is_dir()
    assert (live.path / f"v{LAYOUT_VERSION}").is_dir()
    assert live.use_and_leave() == "used"  # the live store was not disturbed, even partly
    assert not live.path.exists()  # and its owner still removed it on a normal exit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["knn_store_foreign"]


def test_next_temporary_store_removes_orphans_when_it_starts(tmp_path: Path, owners: list[Owner]) -> None:
    orphans = [_orphan(tmp_path, owners) for _ in range(2)]
    with KNNStore.temporary(dir=tmp_path) as store:
        assert [p.exists() for p in orphans] == [False, False]
        assert [p.name for p in tmp_path.iterdir()] == [store.root.name]
    assert list(tmp_path.iterdir()) == []


def test_cli_prune_temporary(tmp_path: Path, owners: list[Owner], capsys: pytest.CaptureFixture) -> None:
    live = Owner(tmp_path)  # first: a temporary store that starts later would remove the orphan itself
    owners.append(live)
    orphan = _orphan(tmp_path, owners)
    assert main(["prune", "--temporary", "--temp-dir", str(tmp_path)]) == 0
    assert f"removed 1 orphaned temporary stores from {tmp_path}" in capsys.readouterr().out
    assert not orphan.exists()
    assert live.use_and_leave() == "used"


def test_cleanup_never_removes_a_store_of_this_process(tmp_path: Path, features: np.ndarray) -> None:
    # The lock is per open file, not per process: this process' own cleanup must see its stores as alive.
    with KNNStore.temporary(dir=tmp_path) as outer:
        ref = outer.ensure(features, 3)
        with KNNStore.temporary(dir=tmp_path) as inner:
            assert cleanup_temporary(tmp_path) == []
            assert inner.root.is_dir()
        np.testing.assert_array_equal(load(ref, 3)[0], outer.knn(features, 3)[0])


@pytest.fixture
def features() -> np.ndarray:
    """2,000 x 16 float32 points; at k=15 each array takes 120 kB, far above the file-size limit."""
    return np.random.default_rng(5).normal(size=(2000, 16)).astype(np.float32)


#: Child that writes an entry with every file limited to argv[3] bytes and reports what it saw as JSON;
#: with argv[4] == "refresh" it recomputes an existing entry instead.
FULL_WRITER = textwrap.dedent(
    """
    import json, resource, signal, sys
    import numpy as np
    import zarr  # imported before the limit: only the store's own writes may hit it
    from knn_store import KNNStore, KnnStoreError

    x = np.load(sys.argv[2])
    store = KNNStore(sys.argv[1], backend="numpy")
    limit = int(sys.argv[3])
    # Without SIG_IGN the kernel kills the process with SIGXFSZ; ignored, the write fails with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        store.ensure(x, 15, refresh=sys.argv[4:] == ["refresh"])
    except Exception as exc:
        print(json.dumps({
            "type": type(exc).__name__,
            "is_knn_store_error": isinstance(exc, KnnStoreError),
            "is_os_error": isinstance(exc, OSError),
            "errno": exc.errno if isinstance(exc, OSError) else None,
            "message": str(exc),
            "lookup_after": store.lookup(x, 15) is not None,
            "entries_after": len(store.info()),
        }))
    else:
        print(json.dumps({"type": None}))
    """
)


def _leftovers(root: Path) -> list[str]:
    """Every temporary or group directory under a store root, relative to it."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name.startswith((".tmp-", ".trash-")) or p.name.endswith(".zarr")
    )


def _assert_recovers(store: KNNStore, x: np.ndarray) -> None:
    """With space available, the same ensure publishes an entry equal to a direct exact kNN."""
    ref = store.ensure(x, 15)
    nb, ds = load(ref, 15)
    direct_nb, direct_ds = exact_knn(prepare_features(x, "euclidean"), 15, backend="numpy")
    np.testing.assert_array_equal(nb, direct_nb)
    np.testing.assert_array_equal(ds, direct_ds)
    assert _leftovers(store.root) == [str(Path(ref.group).relative_to(store.root))]


def _write_with_file_size_limit(root: Path, x_path: Path, *extra: str) -> dict:
    """Run :data:`FULL_WRITER` and return its report."""
    limit = 16_384  # above every zarr.json, below each 120 kB chunk: the failure is mid-entry
    child = subprocess.run(
        [sys.executable, "-c", FULL_WRITER, str(root), str(x_path), str(limit), *extra],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=_env(),
    )
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout)


def test_write_past_the_file_size_limit_fails_cleanly(tmp_path: Path, features: np.ndarray) -> None:
    root = tmp_path / "store"
    np.save(tmp_path / "x.npy", features)
    seen = _write_with_file_size_limit(root, tmp_path / "x.npy")
    assert seen["type"] == "StoreFullError", seen
    assert seen["is_knn_store_error"]
    assert seen["is_os_error"]
    assert seen["errno"] == errno.EFBIG
    assert str(root) in seen["message"]
    assert "no space to write entry" in seen["message"]
    assert "EFBIG" in seen["message"]
    # Nothing half-written is visible, neither to the failing process nor to anyone else.
    assert not seen["lookup_after"]
    assert seen["entries_after"] == 0
    assert _leftovers(root) == []
    store = KNNStore(root, backend="numpy")
    assert store.lookup(features, 15) is None
    assert store.info() == []
    _assert_recovers(store, features)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 192 kB tmpfs (root only; skipped where mounting is not permitted), unmounted afterwards."""
    with tmpfs(tmp_path / "tiny", "192k") as mnt:
        yield mnt


def test_full_tmpfs_fails_cleanly_and_frees_its_space(tiny_tmpfs: Path, features: np.ndarray) -> None:
    def free() -> int:
        st = os.statvfs(tiny_tmpfs)
        return st.f_bavail * st.f_frsize

    store = KNNStore(tiny_tmpfs / "store", backend="numpy")
    before = free()
    with pytest.raises(StoreFullError, match=str(tiny_tmpfs)) as caught:
        store.ensure(features, 15)  # 240 kB of arrays into 192 kB
    assert caught.value.errno == errno.ENOSPC
    assert isinstance(caught.value, OSError)
    assert isinstance(caught.value, KnnStoreError)
    assert _leftovers(store.root) == []
    assert free() >= before  # every block of the partial write was given back
    assert store.lookup(features, 15) is None
    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_tmpfs)], check=True)
    _assert_recovers(store, features)


def test_refresh_past_the_file_size_limit_keeps_the_old_entry(tmp_path: Path, features: np.ndarray) -> None:
    root = tmp_path / "store"
    np.save(tmp_path / "x.npy", features)
    store = KNNStore(root, backend="numpy")
    ref = store.ensure(features, 15)
    before = [a.copy() for a in load(ref, 15)]
    seen = _write_with_file_size_limit(root, tmp_path / "x.npy", "refresh")
    assert seen["type"] == "StoreFullError", seen
    assert seen["lookup_after"]  # the failing process itself still finds the old entry
    clear_memo()
    assert store.lookup(features, 15) == ref
    for a, b in zip(load(ref, 15), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert _leftovers(root) == [str(Path(ref.group).relative_to(root))]


# -- staging directories of killed writers -----------------------------------------------------------------
#: Child that runs ``ensure(x=np.load(argv[2]), k_max=argv[3], refresh=argv[4] == "refresh")`` on the store
#: argv[1] and pauses once its group is fully written but not yet published: it prints the staging directory
#: and waits for a line on stdin (the test kills it there, or lets it go on). Finally prints its group.
WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import knn_store.store.backends.local
    from knn_store import KNNStore

    write_group = knn_store.store.backends.local.write_group

    def write_then_pause(path, *args):
        write_group(path, *args)
        print(path.parent, flush=True)
        sys.stdin.readline()

    knn_store.store.backends.local.write_group = write_then_pause
    store = KNNStore(sys.argv[1], backend="numpy")
    ref = store.ensure(np.load(sys.argv[2]), int(sys.argv[3]), refresh=sys.argv[4] == "refresh")
    print(ref.group, flush=True)
    """
)


def _writer(owners: list[Owner], root: Path, x_path: Path, mode: str = "fresh") -> Owner:
    """A :data:`WRITER` child paused with a complete, unpublished group at k_max=15."""
    writer = Owner(root, x_path, 15, mode, script=WRITER)
    owners.append(writer)
    assert writer.path.name.startswith(".tmp-")
    assert (writer.path / ".knn_store_owner").is_file()
    assert (writer.path / "group.zarr" / "zarr.json").is_file()
    return writer


@pytest.mark.parametrize("cleaner", ["ensure", "prune"])
def test_staging_directory_of_a_killed_writer_is_removed_at_once(
    tmp_path: Path, owners: list[Owner], features: np.ndarray, cleaner: str
) -> None:
    root = tmp_path / "store"
    np.save(tmp_path / "x.npy", features)
    writer = _writer(owners, root, tmp_path / "x.npy")
    writer.kill()
    assert writer.path.is_dir()  # left behind, and minutes old: the one-day rule alone would keep it

    store = KNNStore(root, backend="numpy")
    if cleaner == "ensure":
        _assert_recovers(store, features)  # also checks that only the new group is left
    else:
        assert store.prune() == []
        assert _leftovers(root) == []
    assert not writer.path.exists()


def test_staging_directory_of_a_live_writer_is_kept(
    tmp_path: Path, owners: list[Owner], features: np.ndarray
) -> None:
    root = tmp_path / "store"
    np.save(tmp_path / "x.npy", features)
    writer = _writer(owners, root, tmp_path / "x.npy")
    store = KNNStore(root, backend="numpy")
    assert store.prune() == []
    ref = store.ensure(features, 15)  # publishes its own group meanwhile
    assert (writer.path / "group.zarr" / "zarr.json").is_file()  # a live writer's work is never touched

    out, _ = writer.proc.communicate("go\n", timeout=CHILD_TIMEOUT)
    assert writer.proc.returncode == 0
    assert out.splitlines()[-1] == ref.group  # it lost the race and adopted the published group
    assert not writer.path.exists()  # and removed its staging directory itself
    assert _leftovers(root) == [str(Path(ref.group).relative_to(root))]


def test_killed_refresh_keeps_the_old_entry(
    tmp_path: Path, owners: list[Owner], features: np.ndarray
) -> None:
    root = tmp_path / "store"
    np.save(tmp_path / "x.npy", features)
    store = KNNStore(root, backend="numpy")
    ref = store.ensure(features, 15)
    before = [a.copy() for a in load(ref, 15)]
    writer = _writer(owners, root, tmp_path / "x.npy", "refresh")
    writer.kill()

    clear_memo()
    assert store.lookup(features, 15) == ref
    for a, b in zip(load(ref, 15), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert store.prune() == []
    assert _leftovers(root) == [str(Path(ref.group).relative_to(root))]


def test_staging_directories_of_unknown_owners_wait_a_day(tmp_path: Path, features: np.ndarray) -> None:
    store = KNNStore(tmp_path, backend="numpy")
    entry = Path(store.ensure(features, 4).entry_dir)
    gone = subprocess.Popen(["true"])
    gone.wait()
    # Another machine's writer: its lock is not visible from here and its pid means nothing here.
    foreign = entry / ".tmp-foreign"
    foreign.mkdir()
    record = {"pid": gone.pid, "start": None, "host": f"not-{socket.gethostname()}", "created": time.time()}
    (foreign / ".knn_store_owner").write_text(json.dumps(record))
    legacy = entry / ".tmp-0123456789abcdef.zarr"  # an older version's staging: no owner file
    (legacy / "neighbors").mkdir(parents=True)

    assert store.prune() == []
    store.ensure(features, 4)
    assert foreign.is_dir()
    assert legacy.is_dir()

    day_ago = time.time() - 86400 - 60
    for path in (foreign, legacy):
        os.utime(path, (day_ago, day_ago))
    assert store.prune() == []
    assert not foreign.exists()
    assert not legacy.exists()


# -- local directories of transfers to and from object stores ----------------------------------------------
#: Child that publishes to a ``memory://`` store with the local temporary directory argv[2] and pauses
#: after uploading the first file: it prints that file's local path and waits for a line on stdin.
UPLOADER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fsspec.implementations.memory import MemoryFileSystem
    from knn_store import KNNStore

    put_file = MemoryFileSystem.put_file

    def put_then_pause(self, lpath, *args, **kwargs):
        put_file(self, lpath, *args, **kwargs)
        print(lpath, flush=True)
        sys.stdin.readline()

    MemoryFileSystem.put_file = put_then_pause
    KNNStore("memory://knn-faults/store", backend="numpy").ensure(np.load(sys.argv[1]), 5)
    """
)


def test_transfer_directory_of_a_killed_uploader_is_removed_by_prune(
    tmp_path: Path, owners: list[Owner], features: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_tmp = tmp_path / "tmp"
    local_tmp.mkdir()
    np.save(tmp_path / "x.npy", features)
    uploader = Owner(tmp_path / "x.npy", script=UPLOADER, env={"TMPDIR": str(local_tmp)})
    owners.append(uploader)
    assert uploader.path.is_relative_to(local_tmp)
    uploader.kill()
    [left] = os.listdir(local_tmp)
    assert left.startswith("knn_store_")

    monkeypatch.setattr(tempfile, "tempdir", str(local_tmp))
    assert KNNStore("memory://knn-faults/other").prune() == []  # any remote store's prune cleans up
    assert os.listdir(local_tmp) == []
