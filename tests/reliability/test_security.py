"""Security: config strings are never code, names never escape the output folder, YAML and SQL are safe.

* ``func`` expressions: a seeded generator of hostile strings (attribute walks, dunders, imports,
  builtins, file and memory access, huge exponents and counts, deep nesting, long input) plus a
  Hypothesis grammar. Every string is either rejected with ``UnsafeExpressionError`` or, if
  accepted, evaluated in a child process under an audit hook, a memory limit and an alarm: it must
  return numbers/arrays or raise an ordinary error, without touching files, processes, imports or
  interpreter internals, and without changing its input.
* Names that become paths (file names, ids, config and feature names) stay under ``out_dir``.
* YAML tags that construct Python objects are rejected; catalog queries are parameterised.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dask_features as dfe
from dask_features.config.expressions import compile_expression
from dask_features.engine.names import experiment_stem, safe_component
from dask_features.engine.output import output_paths, read_metadata
from dask_features.errors import OutputNotFoundError, UnsafeExpressionError
from tests.reliability.conftest import write_small

# --- hostile func expressions ------------------------------------------------------------------

#: Must be rejected when the config is loaded (never reach evaluation).
MUST_REJECT = [
    "lambda x: x.__class__",
    "lambda x: x.__class__.__mro__[1].__subclasses__()",
    "lambda x: np.mean.__globals__",
    "lambda x: x.mean.__self__",
    "lambda x: np.__dict__",
    "lambda x: x.T.__array_interface__",
    "lambda x: (1).__class__.__bases__[0].__subclasses__()",
    "lambda x: __import__('os').system('id')",
    "lambda x: __builtins__",
    "import os",
    "from os import system",
    "lambda x: eval('1')",
    "lambda x: exec('import os')",
    "lambda x: open('/etc/passwd').read()",
    "lambda x: getattr(x, 'T')",
    "lambda x: globals()",
    "lambda x: vars(x)",
    "lambda x: type(x)",
    "lambda x: compile('1', 's', 'eval')",
    "lambda x: breakpoint()",
    "lambda x: np.load('/etc/passwd')",
    "lambda x: np.save('/tmp/pwned', x)",
    "lambda x: np.fromfile('/etc/passwd')",
    "lambda x: np.memmap('/tmp/pwned')",
    "lambda x: np.ones(10**12)",
    "lambda x: np.arange(10**12)",
    "lambda x: np.repeat(x, 10**9)",
    "lambda x: np.ctypeslib.as_ctypes(x)",
    "lambda x: x.tofile('/tmp/pwned')",
    "lambda x: x.fill(0)",
    "lambda x: x.resize(10**9)",
    "lambda x: (lambda: x)()",
    "lambda x: [i for i in x]",
    "lambda x: (y := x)",
    "lambda x: f'{x}'",
    "lambda *a: a",
    "lambda x: np.mean(**{'a': x})",
    "lambda x: np.mean(*x)",
    "lambda x: 'a' * 10**9",
    "lambda x: (1,) * 10**9",
    "lambda x: 2 ** 99999999",
    "lambda x: x ** 1e400",
    "lambda _x: _x",
    "lambda x: x._data",
    "lambda x: x\0",
    "lambda x: " + "-" * 1900 + "x",
    "lambda x: " + "x + " * 600 + "x",
    "lambda x: " + "(" * 300 + "x" + ")" * 300,
    "lambda x: np." + "mean(" * 150 + "x" + ")" * 150,
    "",
    "   ",
]

#: Accepted syntax whose evaluation must still be harmless (bounded, no mutation, no side effects).
MAY_ACCEPT = [
    "lambda x: 10**10**10",
    "lambda x: 9**9**9**9",
    "lambda x, s='a': s * int(1e9)",
    "lambda x: x.shape * int(1e9)",
    "lambda x: np.asarray(x.shape) * int(1e9)",
    "lambda x, s='ab': np.asarray([s]) * int(1e9)",
    "lambda x, s='ab': np.multiply(np.asarray(s), int(1e9))",
    "lambda x: np.diff(x, n=int(1e9))",
    "lambda x: np.diff(x, int(1e9))",
    "lambda g: np.sqrt(g, g)",
    "lambda g: np.sqrt(g, out=g)",
    "lambda g: g.clip(0, 1, out=g)",
    "lambda g: np.multiply(g, 2, g)",
    "lambda x: int(1e308) * int(1e308)",
    "lambda x: x.round(int(1e18))",
    "lambda x: np.nanpercentile(x, 50, method='linear')",
    "lambda x: (x - x.mean()) / x.std()",
    "np.log10",
]

_BASES = [
    "x",
    "np",
    "numpy",
    "x.T",
    "np.mean",
    "abs",
    "len",
    "float",
    "(x)",
    "x.mean",
    "np.pi",
    "[x]",
    "x.shape",
]
_ATTRS = [
    "__class__", "__mro__", "__subclasses__", "__globals__", "__builtins__", "__dict__", "__code__",
    "__self__", "__func__", "__reduce_ex__", "__init__", "__getattribute__", "f_globals", "base",
    "ctypes", "data", "tofile", "dump", "dumps", "tobytes", "view", "resize", "fill", "put", "setfield",
    "flags", "mean", "T", "sum", "lib", "os", "sys", "load", "save", "core", "_core", "testing",
]  # fmt: skip
_CALLS = [
    "__import__('os')", "eval('1')", "exec('1')", "open('/etc/passwd')", "getattr(x, 'T')", "globals()",
    "locals()", "vars(x)", "type(x)", "dir(x)", "print(x)", "input()", "setattr(x, 'a', 1)",
    "memoryview(x)", "object()", "super()", "np.loadtxt('/etc/passwd')", "np.genfromtxt('/etc/passwd')",
    "np.empty(10**12)", "np.tile(x, 10**9)", "np.frombuffer(x)", "np.char.multiply('a', 10**9)",
    "int('9' * 99999)", "max(x, key=len)", "min(len(x), 10**9)", "np.diff(x, n=10**3)",
]  # fmt: skip


def hostile_expressions(seed: int = 20250804, n: int = 400) -> list[str]:
    """Seeded random hostile ``func`` strings built from attribute walks, calls and noise.

    Parameters
    ----------
    seed : int
        Seed of the generator (the list is the same on every run).
    n : int
        Number of strings.
    """
    rng = random.Random(seed)
    templates: list[Callable[[], str]] = [
        lambda: f"lambda x: {rng.choice(_BASES)}.{rng.choice(_ATTRS)}",
        lambda: f"lambda x: {rng.choice(_BASES)}.{rng.choice(_ATTRS)}()",
        lambda: f"lambda x: {rng.choice(_BASES)}.{rng.choice(_ATTRS)}.{rng.choice(_ATTRS)}",
        lambda: f"lambda x: {rng.choice(_CALLS)}",
        lambda: f"lambda x: np.mean({rng.choice(_CALLS)})",
        lambda: f"lambda x: x + {rng.choice(_CALLS)}.{rng.choice(_ATTRS)}",
        lambda: f"{rng.choice(_BASES)}.{rng.choice(_ATTRS)}",
        lambda: "lambda x, y={}: y * {}".format(
            rng.choice(["1", "'s'", "(1,)", "[1]", "10**9"]), rng.choice(["x", "int(1e9)", "len(x)"])
        ),
        lambda: (
            "lambda x: "
            + "".join(rng.choice("x()[].,+-*/ _'\"\\0:=lambda") for _ in range(rng.randint(1, 80)))
        ),
    ]
    return [rng.choice(templates)() for _ in range(n)]


# The child process: audit hook, memory limit and alarm around every evaluation.
_SANDBOX = textwrap.dedent(
    """
    import json, resource, signal, sys
    import numpy as np
    import numpy.ma  # NumPy's nan-quantiles import it on first use: NumPy's own import, not an escape
    from dask_features.config.expressions import compile_expression

    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    SUSPICIOUS = ("os.system", "subprocess.Popen", "exec", "compile", "os.exec", "os.posix_spawn", "os.spawn",
                  "socket.", "ctypes.", "object.__getattr__", "object.__setattr__", "os.remove", "os.rename",
                  "builtins.input", "pickle.find_class", "marshal.", "sys._getframe", "code.__new__",
                  "function.__new__", "import", "open", "os.listdir", "os.scandir", "shutil.")
    events = []
    armed = False

    def hook(event, args):
        if armed and event.startswith(SUSPICIOUS):
            events.append(event)

    class Timeout(BaseException):
        pass

    def on_alarm(signum, frame):
        raise Timeout()

    signal.signal(signal.SIGALRM, on_alarm)
    sys.addaudithook(hook)
    out = []
    for text in json.load(sys.stdin):
        expr = compile_expression(text)
        x = np.linspace(0.1, 1.0, 11)
        before = x.copy()
        events.clear()
        armed = True
        signal.alarm(10)
        try:
            value = expr(x)
            outcome = "ok" if isinstance(value, (np.ndarray, np.generic, int, float, bool)) else type(value).__name__
            if outcome != "ok":  # e.g. a bound method: fine if the engine's float conversion refuses it
                try:
                    np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError):
                    outcome = "error:not-numeric"
        except Timeout:
            outcome = "timeout"
        except MemoryError:
            outcome = "memory"
        except Exception as exc:
            outcome = "error:" + type(exc).__name__
        finally:
            signal.alarm(0)
            armed = False
        out.append({"text": text, "outcome": outcome, "events": sorted(set(events)),
                    "mutated": not np.array_equal(x, before)})
    print(json.dumps(out))
    """
)


def _compile(text: str) -> bool:
    """True if ``text`` is accepted; False if rejected with UnsafeExpressionError (anything else fails)."""
    try:
        compile_expression(text)
    except UnsafeExpressionError:
        return False
    return True


def test_known_attacks_are_rejected_at_load_time() -> None:
    accepted = [t[:80] for t in MUST_REJECT if _compile(t)]
    assert not accepted


def test_fuzzed_expressions_are_rejected_or_harmless(tmp_path: Path) -> None:
    corpus = [*MUST_REJECT, *MAY_ACCEPT, *hostile_expressions()]
    accepted = [t for t in corpus if _compile(t)]  # raises on anything but UnsafeExpressionError
    assert set(MAY_ACCEPT) <= set(accepted)  # (these are what the sandbox must contain)
    assert len(accepted) < len(corpus) / 2  # the generator does produce hostile input
    proc = subprocess.run(
        [sys.executable, "-c", _SANDBOX],
        input=json.dumps(accepted),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    bad = [
        r
        for r in json.loads(proc.stdout)
        if r["events"] or r["mutated"] or not (r["outcome"] == "ok" or r["outcome"].startswith("error:"))
    ]
    assert not bad, json.dumps(bad, indent=1)[:3000]
    assert not list(tmp_path.iterdir())  # nothing written by any expression


_TOKENS = [
    "x", "y", "np", "np.mean", "np.diff", "abs", "len", "int", "float", "(", ")", "[", "]", ".", ",", "+",
    "*", "**", "-", "/", "2", "1e3", "'a'", "__class__", "_", "T", "shape", "mean()", "lambda", ":", " ",
    "=", "if", "else", "not", "<", "x.sum(axis=0)",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), max_size=25).map("".join))
def test_grammar_fuzz(body: str) -> None:
    """Random token soup: rejected cleanly, or evaluates to numbers without touching its input."""
    text = f"lambda x, y=2: {body}"
    if not _compile(text):
        return
    x = np.linspace(0.1, 1.0, 7)
    before = x.copy()
    try:
        value = compile_expression(text)(x)
        if not isinstance(value, np.ndarray | np.generic | int | float | bool | tuple | list):
            # e.g. the bare name "np": the engine's float conversion turns it into an error record.
            # (A tuple such as "()" is a sequence of numbers, possibly empty: the engine's shape check
            # decides.)
            with pytest.raises((TypeError, ValueError)):
                np.asarray(value, dtype=np.float64)
    except Exception:  # ordinary runtime errors become a per-feature error record
        pass
    np.testing.assert_array_equal(x, before)


def test_derived_feature_cannot_overwrite_its_input(good_file: Path, tmp_path: Path) -> None:
    """``np.sqrt(g, g)`` would write into the gm column that is also written out."""
    config = {
        "name": "mutate",
        "features": [
            {"name": "gm", "extractor": "transfer.gm_max"},
            {"name": "sq", "func": "lambda g: np.sqrt(g, g)", "input": "gm"},
        ],
    }
    result = dfe.extract(good_file, config, tmp_path / "out", scheduler="sync", progress=False)
    frame = pd.read_parquet(result.successful[str(good_file)])
    reference = dfe.extract(
        good_file,
        {**config, "features": config["features"][:1]},
        tmp_path / "ref",
        scheduler="sync",
        progress=False,
    )
    pd.testing.assert_series_equal(frame["gm"], pd.read_parquet(reference.successful[str(good_file)])["gm"])
    assert frame["sq"].isna().all()
    assert result.errors.query("feature == 'sq'").message.str.contains("read-only").all()


# --- names that become paths -----------------------------------------------------------------

_PART = st.one_of(
    st.sampled_from(
        ["..", ".", "", "/", "\\", "\0", "...", "~", "..\\..", "a\0b", "/etc/passwd", "C:", "芯片", "é" * 300]
    ),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_PART, min_size=1, max_size=6), config_name=_PART)
def test_output_paths_never_escape(parts: list[str], config_name: str) -> None:
    """Any file path below the data folder and any config name map to files under out_dir."""
    out = Path("/srv/out")
    root = "/data/raw"
    path = root + "/" + "/".join(parts) + ".h5"
    stem = experiment_stem(path, root)
    for target in output_paths(out / safe_component(config_name), stem).values():
        resolved = Path(os.path.normpath(target))
        assert resolved.is_relative_to(out), target
        assert "\0" not in str(target)
        assert all(len(p.encode()) <= 255 for p in target.parts)
        assert ".." not in target.relative_to(out).parts


@pytest.mark.parametrize(
    "name", ["../x", "/abs", "a\0b", "..", ".", "a/b", "a\\b", "", "x" * 129, "-x", " x"]
)
def test_config_names_that_are_not_folder_names_are_rejected(name: str, tmp_path: Path) -> None:
    config = {"name": name, "features": [{"name": "g", "extractor": "transfer.gm_max"}]}
    with pytest.raises(dfe.ConfigError, match="becomes a folder name"):
        dfe.load_config(config)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(
        f"name: {json.dumps(name)}\nfeatures:\n  - {{name: g, extractor: transfer.gm_max}}\n"
    )
    with pytest.raises(dfe.ConfigError, match="becomes a folder name"):
        dfe.load_config(yaml_file)


@pytest.mark.parametrize("name", ["../x", "a/b", "a\0b", "__class__.x", "x y"])
def test_feature_names_must_be_identifiers(name: str) -> None:
    with pytest.raises(dfe.ConfigError, match="must be an identifier"):
        dfe.load_config({"name": "ok", "features": [{"name": name, "extractor": "transfer.gm_max"}]})


def test_read_features_does_not_follow_a_hostile_name(good_file: Path, tmp_path: Path) -> None:
    dfe.extract(good_file, "v2_transfer_basic", tmp_path / "x", scheduler="sync", progress=False)
    (tmp_path / "out").mkdir()
    for name in ("../x/v2_transfer_basic", "/" + str(tmp_path / "x" / "v2_transfer_basic"), "..", "../x"):
        with pytest.raises(OutputNotFoundError, match="no output of config"):
            dfe.read_features(tmp_path / "out", name)


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_hostile_file_names_and_ids_stay_inside_out_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    hostile_ids = {"test_id": "../../../escape", "chip_id": "/etc/passwd", "description": "a\\b/../c"}
    files = [
        write_small(data / "..leading-dots.h5", seed=1),
        write_small(data / "sub" / ".." / "sub" / "x.h5", seed=2),
        write_small(data / "deep" / "~" / "$HOME" / "y.h5", seed=3),
    ]
    with h5py.File(files[0], "a") as f:
        f.attrs.update(hostile_ids)  # directly: the synth writer sanitises ids like oect-infra does
    with h5py.File(files[2], "a") as f:
        # NUL inside an id: h5py stores fixed-length bytes with an embedded NUL.
        f.attrs["test_id"] = np.bytes_(b"test_\x00/../../nul")
    before = _tree(tmp_path)
    out = tmp_path / "work" / "out"
    result = dfe.extract(
        [data, str(data / "sub" / ".." / "sub" / "x.h5")],
        "v2_transfer_basic",
        out,
        scheduler="sync",
        progress=False,
    )
    assert result.ok, result.summary()
    assert len(result.successful) == 3  # "sub/../sub/x.h5" is the same file as "sub/x.h5"
    new = _tree(tmp_path) - before
    assert new
    assert all(p.is_relative_to(out) for p in new), sorted(map(str, new))
    meta = read_metadata(result.successful[str(files[0].resolve())])
    assert (meta["test_id"], meta["chip_id"]) == (
        "../../../escape",
        "/etc/passwd",
    )  # kept as data, not as paths


# --- YAML and SQL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/object/apply:subprocess.check_output [['touch', '{marker}']]",
    ],
)
def test_yaml_python_tags_are_rejected(payload: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: evil\nfeatures:\n  - name: g\n    extractor: {payload.format(marker=marker)}\n")
    with pytest.raises(dfe.ConfigError, match="invalid YAML"):
        dfe.load_config(path)
    assert not marker.exists()


def test_yaml_alias_bomb_is_rejected_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    lines += ["name: bomb", "features: *a8"]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(dfe.ConfigError, match="expands to more than"):
        dfe.load_config(path)


INJECTIONS = [
    "' OR 1=1 --",
    "x'); DROP TABLE experiments; --",
    '" OR ""="',
    "%",
    "_",
    "\\",
    "' UNION SELECT path, metadata FROM experiments --",
]


def _fields(exp: dfe.Experiment, root: Path) -> list[str]:
    return [
        exp.chip_id,
        exp.device_id,
        exp.test_id,
        exp.description,
        Path(os.path.relpath(exp.path, root)).as_posix(),
    ]


def test_catalog_queries_are_parameterised(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_small(data / "a-test_1.h5", seed=1, test_id="test_1")
    write_small(data / "b-test_2.h5", seed=2, test_id="test_2")
    evil = write_small(data / "c-evil.h5", seed=3, test_id="x'); DROP TABLE experiments; --")
    cat = dfe.Catalog(tmp_path / "catalog.db")
    assert len(cat.scan(data).added) == 3
    everything = cat.search()
    for value in INJECTIONS:
        for kwargs in (
            {"chip_id": value},
            {"device_id": [value, value]},
            {"status": value},
            {"device_type": value},
        ):
            assert cat.search(**kwargs) == [], kwargs
        # LIKE wildcards are escaped: text matches literally, as a plain substring test would.
        literal = [
            e.path for e in everything if any(value.lower() in str(v).lower() for v in _fields(e, tmp_path))
        ]
        assert [e.path for e in cat.search(text=value)] == literal, value
        with pytest.raises(ValueError, match="order_by"):
            cat.search(order_by=f"path; {value}")
        assert cat.extractions(config_hash=value).empty
        assert cat.missing_features(value)  # an unknown hash: everything is missing, nothing breaks
    # The literal value finds exactly its experiment.
    assert [e.path for e in cat.search(test_id="x'); DROP TABLE experiments; --")] == [str(evil)]
    cat.record_extraction(
        evil, "name'); DROP TABLE extractions; --", "h' OR 1=1", None, "failed", message="'; --"
    )
    row = cat.extractions(config_hash="h' OR 1=1").iloc[0]
    assert (row.config_name, row.message) == ("name'); DROP TABLE extractions; --", "'; --")
    assert len(cat) == 3
    cat.close()
    with sqlite3.connect(tmp_path / "catalog.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"experiments", "unreadable", "extractions"} <= tables


# --- HDF5 references to data outside the file ----------------------------------------------------


def _outside_bytes(folder: Path) -> Path:
    """A file outside the data folder whose bytes would decode as plausible currents."""
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder / "secret.bin"
    np.full(2 * 8 * 41, 1e-3).tofile(secret)
    return secret


def _external_raw(secret: Path) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        shape, dtype = f["transfer/measurement_data"].shape, f["transfer/measurement_data"].dtype
        del f["transfer/measurement_data"]
        f.create_dataset(
            "transfer/measurement_data",
            shape=shape,
            dtype=dtype,
            external=[(str(secret), 0, h5py.h5f.UNLIMITED)],
        )

    return edit


def _external_link(secret_h5: Path) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        with h5py.File(secret_h5, "w") as g:
            g["data"] = f["transfer/measurement_data"][()] * 0 + 1e-3
        del f["transfer/measurement_data"]
        f["transfer/measurement_data"] = h5py.ExternalLink(str(secret_h5), "/data")

    return edit


def _soft_to_external(secret_h5: Path) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        _external_link(secret_h5)(f)
        f["hidden"] = f.get("transfer/measurement_data", getlink=True)
        del f["transfer/measurement_data"]
        f["transfer/measurement_data"] = h5py.SoftLink("/hidden")

    return edit


def _virtual(secret_h5: Path) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        data = f["transfer/measurement_data"][()]
        with h5py.File(secret_h5, "w") as g:
            g["data"] = data * 0 + 1e-3
        layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
        layout[...] = h5py.VirtualSource(str(secret_h5), "data", shape=data.shape)
        del f["transfer/measurement_data"]
        f.create_virtual_dataset("transfer/measurement_data", layout)

    return edit


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("external raw storage", lambda d: _external_raw(_outside_bytes(d))),
        ("an external link", lambda d: _external_link(_outside_bytes(d).with_suffix(".h5"))),
        ("virtual dataset source", lambda d: _virtual(_outside_bytes(d).with_suffix(".h5"))),
        ("an external link", lambda d: _soft_to_external(_outside_bytes(d).with_suffix(".h5"))),
    ],
    ids=["external-storage", "external-link", "virtual-dataset", "soft-link-to-external"],
)
def test_hdf5_references_outside_the_file_are_refused(
    kind: str,
    make: Callable[[Path], Callable[[h5py.File], None]],
    good_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.reliability.conftest import copy_good, edit_h5

    data = tmp_path / "data"
    copy_good(good_file, data)
    evil = write_small(data / "evil-test_9.h5", seed=9, test_id="test_9")
    edit_h5(evil, make(tmp_path / "elsewhere"))
    with pytest.raises(dfe.ExperimentFormatError, match=f"refused: reads data outside the file: .*{kind}"):
        dfe.open_experiment(evil)
    result = dfe.extract(data, "v2_transfer_basic", tmp_path / "out", scheduler="sync", progress=False)
    assert list(result.failed) == [str(evil)]  # the other file is still written
    assert len(result.successful) == 1
    # Allowed only inside an explicit folder: the target is outside the data folder, so still refused.
    monkeypatch.setenv("DASK_FEATURES_ALLOW_EXTERNAL_IN", str(data))
    with pytest.raises(dfe.ExperimentFormatError, match=r"refused: reads data outside .*data"):
        dfe.open_experiment(evil)
    monkeypatch.setenv("DASK_FEATURES_ALLOW_EXTERNAL_IN", str(tmp_path))
    assert dfe.open_experiment(evil).n_transfer_steps == 8


# --- bounded YAML ---------------------------------------------------------------------------------


def _bomb_in_params() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(
        [
            *lines,
            "name: bomb",
            "features:",
            "  - {name: g, extractor: transfer.gm_max, params: {direction: *a8}}",
        ]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_bomb_in_params(), "expands to more than 200,000 values"),
        ("name: deep\nfeatures: " + "[" * 5000 + "]" * 5000, "nested more than|maximum nesting depth"),
        (
            "name: big\nfeatures:\n" + "  - {name: g, extractor: transfer.gm_max}\n" * 30000,
            "configs are limited to 262,144",
        ),
        ("name: x\nfeatures: [\n", "invalid YAML \\(line"),
    ],
    ids=["alias-bomb", "deep", "large", "syntax"],
)
def test_yaml_limits(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(dfe.ConfigError, match=message) as info:
        dfe.load_config(path)
    assert len(str(info.value)) < 400  # short, whatever the input


def test_yaml_uses_the_c_loader_when_there() -> None:
    import yaml

    from dask_features.config import _yaml

    assert _yaml._loader() is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


def test_error_messages_truncate_quoted_values() -> None:
    huge = "x" * 1_000_000
    with pytest.raises(dfe.ConfigError) as info:
        dfe.load_config(
            {
                "name": "t",
                "features": [{"name": "g", "extractor": "transfer.gm_max", "params": {"direction": huge}}],
            }
        )
    assert len(str(info.value)) < 1000
    assert "more characters" in str(info.value)


# --- expression budgets ---------------------------------------------------------------------------


def _outer(dims: int) -> str:
    """``g`` times itself along ``dims`` axes: 8 steps -> 8**dims elements, 8**(dims-1) per step."""
    terms = [f"g[{', '.join(':' if i == j else 'None' for j in range(dims))}]" for i in range(dims)]
    return f"lambda g: {' * '.join(terms)}"


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (_outer(8), "would allocate"),
        ("lambda g: np.asarray(g, dtype='(100000000,)f8')", "plain numeric dtypes only"),
        (_outer(5), "values per step"),
    ],
    ids=["broadcast", "subarray-dtype", "width"],
)
def test_expression_budgets_name_the_feature(
    func: str, message: str, good_file: Path, tmp_path: Path
) -> None:
    config = {
        "name": "budget",
        "features": [
            {"name": "g", "extractor": "transfer.gm_max"},
            {"name": "greedy", "func": func, "input": ["g"]},
        ],
    }
    result = dfe.extract(good_file, config, tmp_path, scheduler="sync", progress=False)
    reasons = " ".join(
        [*result.failed.values(), *result.errors.get("message", pd.Series(dtype=str)).astype(str)]
    )
    assert "'greedy'" in reasons
    assert message in reasons
    expr = compile_expression(func, "greedy")
    with pytest.raises(UnsafeExpressionError, match=f"feature 'greedy': .*{message}"):
        expr(np.linspace(1, 2, 8))


# --- attributes ------------------------------------------------------------------------------------


def test_undecodable_and_huge_attributes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_small(data / "a-test_1.h5", seed=1, test_id="test_1")
    bad = write_small(data / "b-test_2.h5", seed=2, test_id="test_2")
    with h5py.File(bad, "a") as f:
        f.attrs.create("description", b"\xff\xfe broken", dtype=h5py.string_dtype("utf-8"))
        f.attrs["notes"] = "n" * 20_000_000
    exp = dfe.open_experiment(bad)
    assert exp.description == "\ufffd\ufffd broken"
    assert exp.attrs["notes"].startswith("<omitted: 20000002 bytes, sha256 ")
    assert any("undecodable bytes replaced" in p for p in exp.problems)
    assert any("'notes': larger than" in p for p in exp.problems)
    cat = dfe.Catalog(tmp_path / "catalog.db")
    report = cat.scan(data)
    assert len(report.added) == 2
    assert not report.failed
    cat.close()
    result = dfe.extract(
        data,
        "v2_transfer_basic",
        tmp_path / "out",
        scheduler="sync",
        progress=False,
        catalog=tmp_path / "catalog.db",
    )
    assert len(result.successful) == 2
    assert len(dfe.read_features(tmp_path / "out", "v2_transfer_basic")) == 16
    assert max(p.stat().st_size for p in (tmp_path / "out").rglob("*.parquet")) < 200_000
    assert (tmp_path / "catalog.db").stat().st_size < 1_000_000


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["\n", "\r", "\x00", "\t", "\x1b[31m"])
def test_names_with_control_characters_are_rejected(suffix: str, tmp_path: Path) -> None:
    from knn_store._names import check_name
    from knn_store.errors import InvalidNameError

    with pytest.raises(dfe.ConfigError, match="feature 'g"):
        dfe.load_config({"name": "ok", "features": [{"name": "g" + suffix, "extractor": "transfer.gm_max"}]})
    with pytest.raises(dfe.ConfigError, match="config name"):
        dfe.load_config({"name": "ok" + suffix, "features": [{"name": "g", "extractor": "transfer.gm_max"}]})
    with pytest.raises(InvalidNameError):
        check_name("pca64" + suffix)


def _read_transfer_total(exp: dfe.Experiment) -> float:
    """Run in a fresh (spawned) process: read every transfer step of a pickled handle."""
    return float(np.nansum(np.abs(exp.read_transfer(0, exp.n_transfer_steps).id)))


def test_a_file_replaced_after_it_was_checked_is_checked_again(good_file: Path, tmp_path: Path) -> None:
    """The plan checks a file; a task reads it later (maybe in another process): it checks again."""
    from tests.reliability.conftest import edit_h5

    path = tmp_path / "data" / "exp-test_1.h5"
    path.parent.mkdir()
    path.write_bytes(good_file.read_bytes())
    exp = dfe.open_experiment(path)
    evil = tmp_path / "evil.h5"
    evil.write_bytes(good_file.read_bytes())
    edit_h5(evil, _external_link(_outside_bytes(tmp_path / "elsewhere").with_suffix(".h5")))
    os.replace(evil, path)  # same path, other content: a link to data outside the file
    with pytest.raises(dfe.ExperimentFormatError, match="refused: reads data outside the file"):
        exp.read_transfer(0, 1)


def test_a_handle_read_in_another_process_is_checked_there_with_its_openers_folder(
    good_file: Path, tmp_path: Path
) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tests.reliability.conftest import edit_h5

    path = tmp_path / "data" / "exp-test_1.h5"
    path.parent.mkdir()
    path.write_bytes(good_file.read_bytes())
    edit_h5(path, _external_link(_outside_bytes(tmp_path / "elsewhere").with_suffix(".h5")))
    allowed = dfe.open_experiment(path, allow_external_in=str(tmp_path))  # the opener allows the folder
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        # The worker has no DASK_FEATURES_ALLOW_EXTERNAL_IN: it applies the opener's folder.
        assert pool.submit(_read_transfer_total, allowed).result() > 0
        narrow = dataclasses.replace(allowed, external_in=str(tmp_path / "data"))
        with pytest.raises(dfe.ExperimentFormatError, match=r"refused: reads data outside .*data"):
            pool.submit(_read_transfer_total, narrow).result()
