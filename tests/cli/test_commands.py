"""The console scripts: subcommands in-process through ``main(argv)``, entry points as subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dask_features import extract, read_features, synth
from dask_features.cli import main
from dask_features.extractors.registry import REGISTRY
from tests.cli.conftest import cli_env, run_cli


def test_help_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("extract", "info", "catalog", "demo"))


def test_synth_extract_and_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Relative paths as a shell user types them, from the working directory (README's commands).
    monkeypatch.chdir(tmp_path)
    assert (
        main(["synth", "data", "--experiments", "2", "--steps", "6", "--points", "21", "--samples", "400"])
        == 0
    )
    assert len(list(Path("data").glob("*.h5"))) == 2
    assert main(["catalog", "scan", "data", "--db", "data/catalog.db"]) == 0
    assert "2 added" in capsys.readouterr().out
    code = main(
        [
            "extract",
            "data",
            "-c",
            "v2_transfer_basic",
            "-o",
            "out",
            "--scheduler",
            "sync",
            "--catalog",
            "data/catalog.db",
        ]
    )
    assert code == 0
    assert "2 written" in capsys.readouterr().out
    assert len(read_features("out", "v2_transfer_basic")) == 12
    assert main(["catalog", "search", "--db", "data/catalog.db", "--min-steps", "1"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfeatures:\n  - {name: a, extractor: transfer.nope}\n")
    assert (
        main(["extract", str(tmp_path), "-c", str(bad), "-o", str(tmp_path / "o"), "--scheduler", "sync"])
        == 1
    )
    err = capsys.readouterr().err
    assert "no extractor named 'transfer.nope'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["presets", "extractors"])
def test_listings(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize(
    "argv",
    [
        ["extract", "{data}", "-c", "v2_transfer_basic", "-o", "{out}", "--dry-run"],
        ["info", "{data}"],
        ["synth", "{out}/s", "--experiments", "1", "--steps", "2", "--points", "11", "--samples", "100"],
        ["catalog", "scan", "{data}", "--db", "{out}/c.db"],
        ["presets"],
        ["extractors"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_every_subcommand_takes_the_common_options(argv: list[str], tiny_data: Path, tmp_path: Path) -> None:
    args = [a.format(data=tiny_data, out=tmp_path) for a in argv]
    # Before or after the subcommand: the same meaning.
    assert main(["-vv", *args]) == 0
    assert main([*args, "-q", "--debug"]) == 0


def test_verbose_prints_the_summary_once(
    tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "extract",
                str(tiny_data),
                "-c",
                "v2_transfer_basic",
                "-o",
                str(tmp_path),
                "-v",
                "--scheduler",
                "sync",
            ]
        )
        == 0
    )
    out, err = capfd.readouterr()
    assert (out + err).count("4 written") == 1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: p.mkdir() or p, "no experiment files"),
    ],
    ids=["missing-path", "empty-folder"],
)
def test_bad_inputs_fail_before_any_cluster(
    setup, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = setup(tmp_path / "data")
    t0 = time.perf_counter()
    code = main(
        ["extract", str(data), "-c", "v2_mixed", "-o", str(tmp_path / "o"), "--scheduler", "distributed"]
    )
    assert code == 1
    assert message in capsys.readouterr().err
    assert time.perf_counter() - t0 < 10  # a LocalCluster start alone takes longer here
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synth", "{tmp}/d", "--steps", "0"], "argument --steps: must be at least 1, got 0"),
        (["synth", "{tmp}/d", "--points", "x"], "argument --points: 'x' is not an integer"),
        (["demo", "--experiments", "-3"], "argument --experiments: must be at least 1"),
        (["extract", "{tmp}", "-c", "v2_mixed", "-o", "{tmp}/o", "--workers", "0"], "argument --workers/-w"),
        (["synth", "{tmp}/d", "--steps", "2", "--defects", "nan_samples=abc"], "--defects 'nan_samples=abc'"),
    ],
    ids=["steps-0", "points-text", "experiments-negative", "workers-0", "defects-fraction"],
)
def test_bad_numbers_name_their_option(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage error
        code = exc.code
    assert code not in (0, None)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    assert not (tmp_path / "o").exists()


def test_unreachable_address_is_reported_quickly(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port with certainly nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    code = main(
        [
            "extract",
            str(tiny_data),
            "-c",
            "v2_mixed",
            "-o",
            str(tmp_path),
            "--address",
            f"tcp://127.0.0.1:{port}",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"no Dask scheduler at tcp://127.0.0.1:{port}" in err
    assert "dask scheduler" in err  # the fix
    assert "Traceback" not in err
    assert time.perf_counter() - t0 < 10


def test_info_file_and_folder(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(tiny_data.glob("*.h5"))
    assert main(["info", str(files[0])]) == 0
    out = capsys.readouterr().out
    for part in (
        "ids: chip",
        "transfer: 4 steps",
        "transient: 4 steps",
        "workflow: 8 steps",
        "problems: none found",
    ):
        assert part in out
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not hdf5")
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / files[0].name).write_bytes(files[0].read_bytes())
    bad.rename(folder / "broken.h5")
    assert main(["info", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "unreadable:" in out
    assert "not an HDF5 file" in out
    assert "2 files, 1 unreadable" in out


def test_dry_run_plans_and_writes_nothing(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["extract", str(tiny_data), "-c", "v2_transfer_basic", "-o", str(out), "--chunk-steps", "2"]
    assert main([*args, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.count("would run") == 5  # four experiments and the total line
    assert "would run 4 experiment(s) as 12 task(s) (8 chunks)" in text  # 2 chunks + 1 assemble each
    assert "estimated work" in text
    assert not out.exists()
    # The scheduler the real run would choose, named as its summary names it.
    chosen = extract(tiny_data, "v2_transfer_basic", tmp_path / "probe", chunk_steps=2, progress=False)
    assert f"scheduler: {chosen.scheduler.split(' (')[0]} (" in text
    assert main([*args, "--scheduler", "sync", "--dry-run"]) == 0
    assert "scheduler: sync (asked for)" in capsys.readouterr().out
    assert main([*args, "--scheduler", "sync"]) == 0
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "would run 0 experiment(s)" in text
    assert "scheduler: none (nothing to run)" in text


def test_step_errors_are_written_to_a_named_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    synth.generate_dataset(
        data,
        n_experiments=2,
        n_steps=30,
        sweep_points=21,
        transient_samples=200,
        seed=5,
        defects={"empty_steps": 0.3},
    )
    assert (
        main(
            [
                "extract",
                str(data),
                "-c",
                "v2_mixed",
                "-o",
                str(tmp_path / "o"),
                "--scheduler",
                "sync",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "result.errors" not in out
    line = next(x for x in out.splitlines() if "step-level problem" in x)
    path = Path(line.rsplit(" listed in ", 1)[1])
    assert path == tmp_path / "o" / "v2_mixed" / "errors.parquet"
    errors = pd.read_parquet(path)
    assert len(errors) == int(line.split()[0]) > 0
    assert set(errors.columns) >= {"source_file", "step_index", "feature", "message"}


def test_plugin_from_a_local_file(
    plugin: tuple[Path, Path], tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module, config = plugin
    assert main(["extractors", "--import", str(module)]) == 0
    assert "test.slow_len" in capsys.readouterr().out
    assert (
        main(
            [
                "extract",
                str(tiny_data),
                "-c",
                str(config),
                "-o",
                str(tmp_path / "o"),
                "--import",
                str(module),
                "--scheduler",
                "processes",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert read_features(tmp_path / "o", "slow")["n"].tolist() == [21.0] * 16
    assert main(["extractors", "--import", str(tmp_path / "nope.py")]) == 1
    assert "nope.py: no such file" in capsys.readouterr().err


def test_plugin_from_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    info = site / "labplug-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "labplug.py").write_text(
        "import dask_features as dfe\n\n@dfe.register('lab.one', source='transfer')\n"
        "def one(chunk):\n    return chunk.lengths * 0.0 + 1\n"
    )
    (site / "broken.py").write_text("raise RuntimeError('plugin bug')\n")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dask_features.extractors]\nlab = labplug\nbad = broken\n")
    monkeypatch.syspath_prepend(str(site))  # an installed package, as far as importlib.metadata can tell
    saved = dict(REGISTRY)
    try:
        assert main(["extractors"]) == 0
        out, err = capsys.readouterr()
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)
        for name in ("labplug", "broken"):
            sys.modules.pop(name, None)
    assert "lab.one" in out
    assert "extractor plugin 'bad' (broken) was not loaded: RuntimeError: plugin bug" in err


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dask_features", "extractors"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        text=True,
    )
    proc.stdout.close()  # the reader is gone before anything is written, as with `| head -0`
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_python_dash_m_knn_store() -> None:
    # ``python -m dask_features`` is what run_cli runs in every subprocess test here.
    done = subprocess.run(
        [sys.executable, "-m", "knn_store", "--help"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


def test_knn_store_common_options(tmp_path: Path) -> None:
    from knn_store.cli import main as knn_main

    for argv in (
        ["info", "-q", "--store", str(tmp_path)],
        ["info", "-v", "--debug", "--store", str(tmp_path)],
    ):
        assert knn_main(argv) == 0


@pytest.mark.parametrize("script", ["dask-features", "knn-store"])
def test_console_scripts_installed(script: str) -> None:
    exe = Path(sys.executable).with_name(script)
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


def test_import_writes_and_prints_nothing(tmp_path: Path) -> None:
    code = "import dask_features, knn_store, dask_features.catalog"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("flags", "shown"), [([], True), (["-q"], False)])
def test_dashboard_of_a_cluster_the_engine_starts_is_shown(
    flags: list[str], shown: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from dask_features.cli import _parser, _runtime

    restore = _runtime.setup_logging(_parser().parse_args(["presets", *flags]))
    try:
        engine = logging.getLogger("dask_features.engine.run")
        engine.info(
            "started a LocalCluster with %d workers; dashboard: %s", 2, "http://127.0.0.1:8787/status"
        )
        engine.info("some other progress note")
    finally:
        restore()
    err = capsys.readouterr().err
    assert ("dashboard: http://127.0.0.1:8787/status" in err) is shown
    assert "other progress note" not in err


def test_a_memory_limit_no_worker_can_start_with_is_refused(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Below the footprint of an idle worker the nanny would restart it forever: refuse, do not hang.
    assert (
        main(["extract", str(tiny_data), "-c", "v2_mixed", "-o", str(tmp_path), "--memory-limit", "60MB"])
        == 1
    )
    assert "--memory-limit 60MB is below the 96 MB a worker process needs to start" in capsys.readouterr().err


@pytest.mark.parametrize(("limit", "warned"), [("110MB", True), ("1GB", False)])
def test_a_memory_limit_below_the_packages_is_warned(limit: str, warned: bool, caplog) -> None:
    import logging

    from dask_features.cli._cluster import check_memory_limit

    with caplog.at_level(logging.WARNING, logger="dask_features.cli._cluster"):
        assert check_memory_limit(limit) > 0
    assert ("a worker needs to import the packages" in caplog.text) is warned


def test_external_data_only_inside_an_allowed_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import h5py

    from tests.reliability.conftest import write_small

    data = tmp_path / "data"
    path = write_small(data / "linked-test_1.h5", seed=1, test_id="test_1")
    shared = data / "shared" / "transfer.dat"  # not *.h5: not an experiment itself
    shared.parent.mkdir()
    with h5py.File(path, "a") as f, h5py.File(shared, "w") as g:
        g["data"] = f["transfer/measurement_data"][()]
        del f["transfer/measurement_data"]
        f["transfer/measurement_data"] = h5py.ExternalLink(str(shared), "/data")
    args = ["extract", str(data), "-c", "v2_transfer_basic", "-o", str(tmp_path / "o"), "--scheduler", "sync"]
    assert main(args) == 1
    assert (
        "refused: reads data outside the file: 'transfer/measurement_data' is an external link"
        in capsys.readouterr().out
    )
    assert main([*args, "--allow-external-in", str(data)]) == 0
    assert "1 written" in capsys.readouterr().out
    assert "DASK_FEATURES_ALLOW_EXTERNAL_IN" not in os.environ  # an option of that run only


@pytest.mark.parametrize("flags", [[], ["-q"]], ids=["default", "quiet"])
def test_each_failed_file_is_reported_once(tiny_data: Path, tmp_path: Path, flags: list[str]) -> None:
    # A folder of good files and two bad ones: each bad file is one line naming it and why, in the
    # summary that counts it; not also a log line as it failed (that is what -v adds).
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    truncated = data / "truncated-test_8.h5"
    good = next(tiny_data.glob("*.h5")).read_bytes()
    truncated.write_bytes(good[: len(good) // 2])  # an interrupted copy
    garbage = data / "garbage-test_9.h5"
    garbage.write_bytes(b"not an HDF5 file" * 100)
    done = run_cli("extract", str(data), "-c", "v2_transfer_basic", "-o", str(tmp_path / "o"), *flags)
    assert done.returncode == 1, done.stderr
    shown = done.stdout + done.stderr
    assert "4 written, 0 skipped (up to date), 2 failed" in done.stdout
    for path, reason in ((truncated, "file is truncated"), (garbage, "not an HDF5 file")):
        assert shown.count(str(path)) == 1, shown
        assert f"FAILED {path}: {reason}" in done.stdout
    verbose = run_cli("extract", str(data), "-c", "v2_transfer_basic", "-o", str(tmp_path / "o"), "-v")
    assert f"ERROR dask_features.engine.results: {truncated}: file is truncated" in verbose.stderr


@pytest.mark.parametrize(
    ("link", "target", "problem", "failed"),
    [
        ("transfer", "/transfer", "soft links loop at 'transfer'", True),
        (
            "transfer/measurement_data",
            "/nowhere",
            "soft link 'transfer/measurement_data' -> '/nowhere' points at nothing",
            True,
        ),
        ("raw/workflow", "/nowhere", "soft link 'raw/workflow' -> '/nowhere' points at nothing", False),
        # Not read by a transfer-only config: its transfer sweeps are extracted.
        ("transient", "/nowhere", "soft link 'transient' -> '/nowhere' points at nothing", False),
    ],
    ids=["loop", "dangling", "dangling-optional-workflow", "dangling-transient-not-needed"],
)
def test_a_soft_link_that_cannot_be_followed_is_named(
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    link: str,
    target: str,
    problem: str,
    failed: bool,
) -> None:
    import h5py

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    path = synth.write_experiment(
        data / "linked-test_9.h5", n_transfer=4, n_transient=4, sweep_points=21, seed=9
    )
    with h5py.File(path, "r+") as f:
        del f[link]
        f[link] = h5py.SoftLink(target)
    args = ["extract", str(data), "-c", "v2_transfer_basic", "-o", str(tmp_path / "o"), "--scheduler", "sync"]
    done = run_cli(*args)
    assert done.returncode == int(failed), done.stderr
    message = f"{path}: {problem}"
    assert f"{4 + (not failed)} written, 0 skipped (up to date), {int(failed)} failed" in done.stdout
    assert (f"FAILED {message}" in done.stdout) == failed
    ignored = "transient data unavailable" if link == "transient" else "workflow ignored"
    assert f"{message}; {ignored}" in done.stderr or failed
    assert "cannot be opened" not in done.stdout + done.stderr
    assert main(args) == int(failed)  # a rerun resumes: only the failed file is tried again
    assert (
        f"0 written, {4 + (not failed)} skipped (up to date), {int(failed)} failed" in capsys.readouterr().out
    )
    assert main(["info", str(path)]) == int(failed)
    assert (f"unreadable: {message}" if failed else f"problem: {message}") in capsys.readouterr().out


def test_transient_data_behind_a_dangling_link_are_shown_unavailable(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import h5py

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    path = synth.write_experiment(
        data / "linked-test_9.h5", n_transfer=4, n_transient=4, sweep_points=21, seed=9
    )
    with h5py.File(path, "r+") as f:
        del f["transient"]
        f["transient"] = h5py.SoftLink("/nowhere")
    problem = "soft link 'transient' -> '/nowhere' points at nothing"
    assert main(["info", str(path)]) == 0  # readable: its transfer sweeps are there
    out = capsys.readouterr().out
    assert "transfer: 4 steps" in out
    assert f"transient: unavailable ({problem})" in out  # not "0 steps ... inferred (no index columns)"
    assert f"problem: {path}: {problem}; transient data unavailable" in out
    # A dry run says what the run would do: fail the file for a config that reads transient data
    # (as it fails a file without transient steps, which it listed as "would run").
    empty = synth.write_experiment(
        data / "none-test_8.h5", n_transfer=4, n_transient=0, sweep_points=21, seed=8
    )
    args = ["extract", str(data), "-o", str(tmp_path / "o"), "--dry-run"]
    assert main([*args, "-c", "transient_tau"]) == 0
    out = capsys.readouterr().out
    assert f"unreadable: {path}: {problem}" in out
    assert f"would fail: {empty}: no transient steps, which config 'transient_tau' needs" in out
    assert "would run 4 experiment(s)" in out
    assert "1 unreadable, 1 would fail" in out
    assert main([*args, "-c", "v2_transfer_basic"]) == 0
    out = capsys.readouterr().out
    assert "would run 6 experiment(s)" in out
    assert "would fail" not in out


def test_every_config_problem_is_listed_before_anything_runs(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One run shows every independent mistake, one per line under the heading naming the file; a
    # user does not fix, rerun and meet the next one.
    config = tmp_path / "mine.yaml"
    config.write_text(
        "name: mine\n"
        "features:\n"
        "  - {name: bogus, extractor: lab.nothing}\n"
        "  - {name: tau, extractor: transient.tau_on_off, params: {skip_samples: -1, min_r2: 5}}\n"
        "  - {name: gm_rev, extractor: transfer.gm_max, parms: {direction: reverse}}\n"
        "  - {name: a, func: 'lambda x: x + 1', input: b}\n"
        "  - {name: b, func: 'lambda x: x * 2', input: a}\n"
    )
    problems = [
        "feature 'bogus': no extractor named 'lab.nothing'",
        "feature 'tau': transient.tau_on_off: skip_samples must be a non-negative integer, got -1",
        "feature 'tau': transient.tau_on_off: min_r2 must be a number <= 1, got 5",
        "feature 'gm_rev': unknown key 'parms' (did you mean 'params'?)",
        "dependency cycle: a -> b -> a",
    ]
    for extra in ([], ["--dry-run"]):
        args = ["extract", str(tiny_data), "-c", str(config), "-o", str(tmp_path / "o"), *extra]
        assert main(args) == 1
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [
            f"error: invalid feature config {str(config.resolve())!r} (5 problem(s)):",
            *(f"  - {p}" for p in problems),
        ]
        assert captured.out == ""
    assert not (tmp_path / "o").exists()


def test_a_missing_import_is_a_plain_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A user's mistake, not a bug: no "unexpected PluginError ... run with --debug for the traceback".
    assert main(["extractors", "--import", str(tmp_path / "nope.py")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: --import {tmp_path / 'nope.py'}: no such file"
