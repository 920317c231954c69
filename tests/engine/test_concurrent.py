"""Writers sharing an output folder never break each other (issue case 7)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dask_features import synth
from dask_features.engine import files

#: Extractions per process.
ROUNDS = 50
#: Experiments each round writes (tiny: the point is many overlapping writes of the same files).
N_FILES = 3

SCRIPT = textwrap.dedent(
    """
    import pathlib, sys, time
    import dask_features as dfe

    if __name__ == "__main__":
        data, out, rounds, me = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
        config = {"name": "shared", "features": [{"name": "imax", "extractor": "transfer.absI_max"}]}
        # Start together (imports take seconds): the writes of both processes must overlap.
        pathlib.Path(out + f".ready-{me}").touch()
        while len(list(pathlib.Path(out).parent.glob("*.ready-*"))) < 2:
            time.sleep(0.01)
        failures = 0
        for _ in range(rounds):
            result = dfe.extract(data, config, out, scheduler="sync", force=True, progress=False)
            failures += len(result.failed)
            for reason in result.failed.values():
                print("FAILED", reason, flush=True)
        print("failures", failures)
    """
)


def _env() -> dict[str, str]:
    root = str(Path(__file__).parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow  # ~20-40 s: two interpreters, 100 extractions; the next test is the fast, exact check
@pytest.mark.timeout(600)
def test_two_processes_extracting_into_one_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for seed in range(N_FILES):
        synth.write_experiment(
            data / f"exp{seed}.h5", n_transfer=2, n_transient=0, sweep_points=11, seed=seed
        )
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(data), str(out), str(ROUNDS), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=280) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        # Each used to delete the other's temporary files as stale ("cannot write ... No such file").
        assert stdout.strip().endswith("failures 0"), stdout
    assert not list(out.rglob("*.tmp"))
    assert len(list((out / "shared" / "steps").glob("*.parquet"))) == N_FILES


@pytest.fixture(scope="module")
def dead_token() -> str:
    """The owner token of a writer that is gone (its start time no longer matches even if the pid
    is reused)."""
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    return files.owner_token().replace(f"-{os.getpid()}-", f"-{exited.pid}-")


def test_temporaries_of_live_writers_are_kept(tmp_path: Path, dead_token: str) -> None:
    # The old writer removed every ".x.parquet.*.tmp" as stale, including another live writer's.
    final = tmp_path / "t" / "x.parquet"
    final.parent.mkdir()
    mine = final.with_name(f".x.parquet.{files.owner_token()}.abcd1234.tmp")
    mine.write_text("in flight")
    dead = final.with_name(f".x.parquet.{dead_token}.0000ffff.tmp")
    dead.write_text("left by a killed run")
    files.publish(final, lambda tmp: tmp.write_text("done"))
    assert final.read_text() == "done"
    assert mine.exists()  # its writer (this process) is alive
    assert not dead.exists()  # its writer exited


def test_a_folder_is_listed_once_per_as_many_publishes_as_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listing the folder on every publish made a run quadratic in its experiments (~11 ms a
    # publish in a folder of 10,000 files).
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(100):
        (folder / f"e{i}.parquet").write_text("old")
    listed: list[object] = []
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: listed.append(p) or scandir(p))
    for i in range(100):
        files.publish(folder / f"e{i}.parquet", lambda tmp: tmp.write_text("new"))
    assert len(listed) == 1
    assert all((folder / f"e{i}.parquet").read_text() == "new" for i in range(100))


def test_a_dead_temporary_made_after_a_listing_goes_at_the_next_one(tmp_path: Path, dead_token: str) -> None:
    final = tmp_path / "f" / "x.parquet"
    final.parent.mkdir()
    files.publish(final, lambda tmp: tmp.write_text("1"))  # lists the folder (empty: again next time)
    dead = final.with_name(f".x.parquet.{dead_token}.0000ffff.tmp")
    dead.write_text("left by a writer killed in this run")
    files.publish(final, lambda tmp: tmp.write_text("2"))
    assert not dead.exists()
    assert final.read_text() == "2"


def _child_token(queue: Any) -> None:
    queue.put((os.getpid(), files.owner_token()))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_a_forked_writer_has_its_own_owner_token() -> None:
    # The token is remembered per process: a child forked after the parent made its token must not
    # inherit it (the parent's temporaries would look like the child's, and the reverse).
    import multiprocessing

    parent = files.owner_token()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_token, args=(queue,))
    child.start()
    pid, token = queue.get(timeout=60)
    child.join(timeout=60)
    assert token != parent
    assert f"-{pid}-" in token
    assert files.owner_token() == parent
