"""A run killed with SIGKILL leaves no partial output, and a rerun finishes only what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

import dask_features as dfe
from dask_features import synth

# A config whose extractor is slow enough that the run can be killed half way.
SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import dask_features as dfe

    @dfe.register("test.slow_len", source="transfer", cost=1e6)
    def slow_len(chunk):
        time.sleep(float(os.environ["SLOW_DELAY"]))  # not a param: the config (and its hash) stay the same
        return chunk.lengths.astype(float)

    config = {
        "name": "slow",
        "features": [
            {"name": "n", "extractor": "test.slow_len"},
            {"name": "gm", "extractor": "transfer.gm_max"},
        ],
    }
    result = dfe.extract(sys.argv[1], config, sys.argv[2], scheduler="sync", max_in_flight=1, progress=False)
    print(result.summary())
    """
)


def _run(script: Path, data: Path, out: Path, delay: float) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(script), str(data), str(out)]
    env = {**os.environ, "SLOW_DELAY": str(delay)}
    return subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE, env=env)


def _visible_steps(out: Path) -> list[Path]:
    return sorted((out / "slow" / "steps").glob("*.parquet")) if (out / "slow" / "steps").exists() else []


def test_sigkill_then_resume_equals_clean_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    synth.generate_dataset(data, n_experiments=6, n_steps=8, sweep_points=21, transient_samples=200, seed=4)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"

    proc = _run(script, data, out, delay=0.5)
    deadline = time.monotonic() + 120
    while len(_visible_steps(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = _visible_steps(out)
    assert 2 <= len(written) < 6, "the run must be killed half way for this test to mean anything"
    for path in written:  # whatever is visible is complete and readable
        table = pq.read_table(path)
        assert table.num_rows == 8
        assert b"dask_features" in table.schema.metadata

    rerun = _run(script, data, out, delay=0.0)
    stdout, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0
    assert f"{6 - len(written)} written, {len(written)} skipped" in stdout  # only the missing ones
    assert len(_visible_steps(out)) == 6
    assert not list((out / "slow").rglob("*.tmp"))

    clean = tmp_path / "clean"
    assert _run(script, data, clean, delay=0.0).wait(timeout=300) == 0
    resumed = dfe.read_features(out, "slow").drop(columns="source_file")
    fresh = dfe.read_features(clean, "slow").drop(columns="source_file")
    pd.testing.assert_frame_equal(resumed, fresh)
