"""Safe evaluation of the ``func:`` expressions found in users' YAML configs.

Existing configs contain derived features such as ``func: "lambda gm: (gm - gm.mean()) / gm.std()"``.
The tool they come from passes that string to ``eval``, which executes arbitrary code from a data
file. Here the string is parsed with :mod:`ast`, checked against a small grammar and then
*interpreted* node by node; nothing is ever compiled or executed by Python itself.

Allowed: a single ``lambda`` whose parameters are the feature's inputs (positional, in ``input``
order) and its ``params`` (keywords); numeric constants and short strings; arithmetic, comparisons,
``&``/``|``/``~``, unary minus, conditional expressions; indexing and slicing; tuples and lists
(converted to arrays); calls to an allow-list of NumPy functions (``np.mean``, ``np.nanstd``, ...)
and array methods (``x.mean()``, ``x.std(axis=0)``, ...) with keyword arguments; a few builtins
(``abs``, ``min``, ``max``, ``len``, ``float``, ``int``, ``round``). A bare ``np.log10`` names a
function applied to the inputs. Floating-point errors are not reported, and a reduction over
nothing (``np.nanmean`` of an all-NaN step, ``x.mean()`` of an empty selection) is NaN without
NumPy's ``RuntimeWarning`` (:mod:`dask_features.config._reductions`): NaN is a value here.

Rejected with :class:`~dask_features.errors.UnsafeExpressionError`: attribute access outside the
allow-list (``x.__class__``, ``np.load``...), any name starting with ``_``, imports, nested lambdas,
comprehensions, f-strings, ``**kwargs``/starred arguments, walrus, and exponents whose magnitude
could exhaust memory or time (Python integers are promoted to float before ``**``).
"""

from __future__ import annotations

import ast
import functools
import math
from typing import Any

import numpy as np

from dask_features.config._grammar import (
    ARRAY_ATTRIBUTES,
    ARRAY_METHODS,
    BINOPS,
    BOUNDED_ARGS,
    BUDGET_KEY,
    BUILTINS,
    CMPOPS,
    ELEMENTS_PER_INPUT,
    MAX_CONSTANT_EXPONENT,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_OUTPUT_WIDTH,
    MAX_STRING,
    MIN_ELEMENT_BUDGET,
    NUMPY_CONSTANTS,
    NUMPY_FUNCTIONS,
    UNARYOPS,
    depth,
    is_text,
    read_only,
)
from dask_features.config._reductions import QUIET_METHODS, QUIET_REDUCTIONS
from dask_features.errors import UnsafeExpressionError

__all__ = ["NUMPY_FUNCTIONS", "SafeExpression", "compile_expression"]


class SafeExpression:
    """A validated ``func`` expression, callable like the lambda it spells.

    Parameters
    ----------
    text : str
        ``"lambda a, b: ..."`` or a NumPy function name such as ``"np.log10"``.
    feature : str, optional
        Feature name, used in error messages.
    n_inputs : int, optional
        Number of inputs the feature declares: fewer parameters is a problem.

    Raises
    ------
    UnsafeExpressionError
        With every problem found (see :meth:`_parse`).

    Attributes
    ----------
    arg_names : tuple of str
        The lambda's parameter names, in order (``("x",)`` for a bare function name).
    """

    def __init__(self, text: str, feature: str | None = None, n_inputs: int | None = None) -> None:
        self.text = text
        self.feature = feature
        self._where = f"feature {feature!r}: " if feature else ""
        # Problems of the parsed expression, collected while it is checked (None: raise at once).
        self._found: list[str] | None = None
        self._body, self.arg_names, self.defaults = self._parse(text, n_inputs)

    def __repr__(self) -> str:
        return f"SafeExpression({self.text!r})"

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        return (type(self), (self.text, self.feature))

    # --- validation -------------------------------------------------------------------------

    def _fail(self, message: str, node: ast.AST | None = None) -> UnsafeExpressionError:
        col = getattr(node, "col_offset", None)
        at = f" (at column {col + 1})" if col is not None else ""
        return UnsafeExpressionError([f"{self._where}{message}{at} in {self.text!r}"])

    def _parse(
        self, text: object, n_inputs: int | None = None
    ) -> tuple[ast.expr, tuple[str, ...], dict[str, Any]]:
        """The body, parameter names and defaults of ``text``, every construct checked.

        A text that is no expression, or no lambda, or a lambda with parameters that are not
        allowed, raises at once; otherwise every problem of its defaults and body is found (a construct refused is not looked into), and
        with ``n_inputs`` too few parameters for the feature's inputs; all are raised together.
        """
        # ``object``: a public caller (or a dict config) may hand over anything, which is refused here.
        if not isinstance(text, str) or not text.strip():
            raise self._fail("func must be a non-empty string")
        if len(text) > MAX_LENGTH:
            raise self._fail(f"expression longer than {MAX_LENGTH} characters")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise self._fail(f"not a valid expression ({exc.msg})") from None
        except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes; parser limits
            raise self._fail(f"not a valid expression ({type(exc).__name__}: {exc})") from None
        if depth(tree) > MAX_DEPTH:
            raise self._fail(f"expression nested more than {MAX_DEPTH} levels deep")
        node = tree.body
        if isinstance(node, ast.Attribute | ast.Name):  # "np.log10": a function applied to the inputs
            self._check_numpy_ref(node)
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            call = ast.Call(
                func=ast.Attribute(value=ast.Name("np", ast.Load()), attr=name, ctx=ast.Load()),
                args=[ast.Name("x", ast.Load())],
                keywords=[],
            )
            self._check_arity(("x",), n_inputs, [])
            return ast.fix_missing_locations(ast.Expression(call)).body, ("x",), {}
        if not isinstance(node, ast.Lambda):
            raise self._fail("func must be a lambda expression or a NumPy function name", node)
        args = node.args
        if args.vararg or args.kwarg or args.posonlyargs:
            raise self._fail("*args, **kwargs and positional-only parameters are not allowed", node)
        names = tuple(a.arg for a in (*args.args, *args.kwonlyargs))
        for n in names:
            if n.startswith("_"):  # its every use would be refused too: said once
                raise self._fail(f"parameter name {n!r} may not start with '_'", node)
        found: list[str] = []
        self._found = found
        try:
            defaults: dict[str, Any] = {}
            pos_defaults = args.defaults
            for a, d in zip(args.args[len(args.args) - len(pos_defaults) :], pos_defaults, strict=True):
                defaults[a.arg] = self._constant(d)
            for a, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                if kw_default is not None:  # None: a keyword-only parameter without a default
                    defaults[a.arg] = self._constant(kw_default)
            self._check(node.body, set(names))
        finally:
            self._found = None  # from here on (evaluation) a problem raises at once
        self._check_arity(names, n_inputs, found)
        return node.body, names, defaults

    def _check_arity(self, names: tuple[str, ...], n_inputs: int | None, found: list[str]) -> None:
        """Raise everything ``found``, and too few parameters for ``n_inputs`` inputs."""
        if n_inputs is not None and len(names) < n_inputs:
            found.append(
                f"feature {self.feature!r}: the lambda takes {len(names)} parameter(s) {list(names)} "
                f"but the feature has {n_inputs} input(s); inputs are passed positionally"
            )
        if found:
            raise UnsafeExpressionError(found)

    def _constant(self, node: ast.expr) -> Any:
        before = None if self._found is None else len(self._found)
        self._check(node, set())
        if self._found is not None and len(self._found) != before:
            return None  # refused: never evaluated
        return self._eval(node, {})

    def _check_numpy_ref(self, node: ast.expr) -> None:
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("np", "numpy")
        ):
            if node.attr in NUMPY_FUNCTIONS:
                return
            raise self._fail(f"numpy.{node.attr} is not in the allowed function list", node)
        raise self._fail("only NumPy functions from the allow-list may be named", node)

    def _check(self, node: ast.AST, names: set[str]) -> None:
        """Check ``node`` and below: a problem is collected (while parsing) and its subtree skipped,
        so the problems of the other subtrees are found too."""
        try:
            self._check_node(node, names)
        except UnsafeExpressionError as exc:
            if self._found is None:
                raise
            self._found.extend(exc.problems)

    def _check_node(self, node: ast.AST, names: set[str]) -> None:
        match node:
            case ast.Constant(value=v):
                if isinstance(v, str) and len(v) > MAX_STRING:
                    raise self._fail("string constant too long", node)
                if not isinstance(v, int | float | str | bool | type(None)):
                    raise self._fail(f"constant of type {type(v).__name__} not allowed", node)
            case ast.Name(id=n):
                if n.startswith("_"):
                    raise self._fail(f"name {n!r} is not allowed", node)
                if n not in names and n not in BUILTINS and n not in ("np", "numpy", "True", "False", "None"):
                    raise self._fail(f"unknown name {n!r} (inputs and params are: {sorted(names)})", node)
            case ast.BinOp(left=left, op=op, right=right):
                if type(op) not in BINOPS:
                    raise self._fail(f"operator {type(op).__name__} not allowed", node)
                if (
                    isinstance(op, ast.Pow)
                    and isinstance(right, ast.Constant)
                    and isinstance(right.value, int | float)
                    and abs(right.value) > MAX_CONSTANT_EXPONENT
                ):
                    raise self._fail("exponent too large", node)
                for side in (left, right):
                    # "a" * 10**9 or (1,) * 10**9 would allocate without bound; arrays are fine.
                    if isinstance(side, ast.Tuple) or (
                        isinstance(side, ast.Constant) and isinstance(side.value, str)
                    ):
                        raise self._fail("arithmetic on strings or tuples is not allowed", node)
                self._check(left, names)
                self._check(right, names)
            case ast.UnaryOp(op=op, operand=operand):
                if type(op) not in UNARYOPS:
                    raise self._fail(f"operator {type(op).__name__} not allowed", node)
                self._check(operand, names)
            case ast.BoolOp(values=values):
                for operand in values:
                    self._check(operand, names)
            case ast.Compare(left=left, ops=ops, comparators=comps):
                for cmp in ops:
                    if type(cmp) not in CMPOPS:
                        raise self._fail(f"comparison {type(cmp).__name__} not allowed", node)
                self._check(left, names)
                for c in comps:
                    self._check(c, names)
            case ast.IfExp(test=t, body=b, orelse=o):
                for sub in (t, b, o):
                    self._check(sub, names)
            case ast.Subscript(value=value, slice=sl):
                self._check(value, names)
                self._check(sl, names)
            case ast.Slice(lower=lo, upper=up, step=st):
                for bound in (lo, up, st):
                    if bound is not None:
                        self._check(bound, names)
            case ast.Tuple(elts=elts) | ast.List(elts=elts):
                for e in elts:
                    if isinstance(e, ast.Starred):
                        raise self._fail("starred expressions are not allowed", e)
                    self._check(e, names)
            case ast.Attribute(value=value, attr=attr):
                if attr.startswith("_"):
                    raise self._fail(f"attribute {attr!r} is not allowed", node)
                if isinstance(value, ast.Name) and value.id in ("np", "numpy"):
                    if attr not in NUMPY_FUNCTIONS and attr not in NUMPY_CONSTANTS:
                        raise self._fail(f"numpy.{attr} is not in the allowed list", node)
                elif attr not in ARRAY_ATTRIBUTES and attr not in ARRAY_METHODS:
                    raise self._fail(f"attribute {attr!r} is not in the allowed list", node)
                else:
                    self._check(value, names)
            case ast.Call(func=func, args=args, keywords=keywords):
                if isinstance(func, ast.Attribute):
                    if func.attr in ARRAY_ATTRIBUTES:
                        raise self._fail(f"{func.attr!r} is not callable", node)
                    self._check(func, names)
                elif isinstance(func, ast.Name) and func.id in BUILTINS:
                    pass
                else:
                    raise self._fail(
                        "only allowed NumPy functions, array methods and builtins may be called", node
                    )
                for a in args:
                    if isinstance(a, ast.Starred):
                        raise self._fail("starred arguments are not allowed", a)
                    self._check(a, names)
                for kw in keywords:
                    if kw.arg is None:
                        raise self._fail("**kwargs in calls are not allowed", kw)
                    if kw.arg.startswith("_"):
                        raise self._fail(f"keyword {kw.arg!r} is not allowed", kw)
                    self._check(kw.value, names)
            case _:
                raise self._fail(f"{type(node).__name__} is not allowed in a func expression", node)

    # --- evaluation -------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate with the inputs bound positionally and params by keyword."""
        if len(args) > len(self.arg_names):
            raise TypeError(
                f"{self._where}expression takes {len(self.arg_names)} argument(s) {list(self.arg_names)}, "
                f"got {len(args)} inputs"
            )
        env = dict(self.defaults)
        # Inputs are other features' columns: hand out read-only views so that no expression
        # (np.sqrt(g, g), x.clip(0, 1, out=x), ...) can overwrite values that are also written out.
        env.update(zip(self.arg_names, (read_only(a) for a in args), strict=False))
        env.update(kwargs)
        missing = [n for n in self.arg_names if n not in env]
        if missing:
            raise TypeError(f"{self._where}no value for parameter(s) {missing}")
        inputs = sum(int(np.size(a)) for a in args if isinstance(a, np.ndarray))
        env[BUDGET_KEY] = max(MIN_ELEMENT_BUDGET, ELEMENTS_PER_INPUT * inputs)
        with np.errstate(all="ignore"):
            result = self._eval(self._body, env)
        width = math.prod(np.shape(result)[1:])
        if width > MAX_OUTPUT_WIDTH:
            raise self._fail(f"result has {width:,} values per step; at most {MAX_OUTPUT_WIDTH} are allowed")
        return result

    def _guard(self, env: dict[str, Any], node: ast.AST, *operands: Any) -> None:
        """Refuse an operation whose result would exceed the element budget, before it runs."""
        arrays = [np.shape(v) for v in operands if isinstance(v, np.ndarray)]
        try:
            elements = math.prod(np.broadcast_shapes(*arrays)) if arrays else 0
        except ValueError:
            elements = 0  # shapes do not broadcast: NumPy raises its own error without allocating
        nested = sum(
            int(np.size(v))
            for s in operands
            if isinstance(s, tuple | list)
            for v in s
            if isinstance(v, np.ndarray)
        )
        budget = env.get(BUDGET_KEY, MIN_ELEMENT_BUDGET)
        if max(elements, nested) > budget:
            raise self._fail(
                f"would allocate {max(elements, nested):,} elements; the budget is {budget:,}", node
            )

    def _eval(self, node: ast.AST, env: dict[str, Any]) -> Any:
        match node:
            case ast.Constant(value=v):
                return v
            case ast.Name(id=n):
                if n in env:
                    return env[n]
                if n in ("np", "numpy"):
                    return np
                if n in BUILTINS:
                    return BUILTINS[n]
                return {"True": True, "False": False, "None": None}[n]
            case ast.BinOp(left=left, op=op, right=right):
                a, b = self._eval(left, env), self._eval(right, env)
                self._guard(env, node, a, b)
                return BINOPS[type(op)](a, b)
            case ast.UnaryOp(op=op, operand=operand):
                return UNARYOPS[type(op)](self._eval(operand, env))
            case ast.BoolOp(op=op, values=values):
                outcome = self._eval(values[0], env)
                for operand in values[1:]:
                    if isinstance(op, ast.And):
                        if not outcome:
                            return outcome
                    elif outcome:
                        return outcome
                    outcome = self._eval(operand, env)
                return outcome
            case ast.Compare(left=left, ops=ops, comparators=comps):
                lhs = self._eval(left, env)
                result: Any = True
                for cmp, c in zip(ops, comps, strict=True):
                    rhs = self._eval(c, env)
                    self._guard(env, node, lhs, rhs)
                    part = CMPOPS[type(cmp)](lhs, rhs)
                    result = part if result is True else result & part
                    lhs = rhs
                return result
            case ast.IfExp(test=t, body=b, orelse=o):
                return self._eval(b, env) if self._eval(t, env) else self._eval(o, env)
            case ast.Subscript(value=value, slice=sl):
                return self._eval(value, env)[self._eval(sl, env)]
            case ast.Slice(lower=lo, upper=up, step=st):
                return slice(*(None if s is None else self._eval(s, env) for s in (lo, up, st)))
            case ast.Tuple(elts=elts):
                return tuple(self._eval(e, env) for e in elts)
            case ast.List(elts=elts):
                items = [self._eval(e, env) for e in elts]
                if any(is_text(i) for i in items):
                    raise TypeError("lists may hold numbers and arrays only")
                return np.asarray(items)
            case ast.Attribute(value=value, attr=attr):
                base = self._eval(value, env)
                if base is np:
                    if attr in NUMPY_CONSTANTS:
                        return NUMPY_CONSTANTS[attr]
                    return QUIET_REDUCTIONS.get(attr) or getattr(np, attr)
                if attr in QUIET_METHODS:  # x.mean() is np.mean(x): NaN over nothing without a warning
                    return functools.partial(QUIET_REDUCTIONS[attr], np.asarray(base))
                return getattr(np.asarray(base), attr)
            case ast.Call(func=func, args=args, keywords=keywords):
                fn = self._eval(func, env)
                pos = [self._eval(a, env) for a in args]
                kws = {kw.arg: self._eval(kw.value, env) for kw in keywords if kw.arg is not None}
                # Strings only as keyword options (method="linear"): never as data to compute on.
                if any(is_text(a) for a in pos) or any(
                    is_text(v) and not isinstance(v, str) for v in kws.values()
                ):
                    raise TypeError("strings may only be passed as keyword options")
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in BOUNDED_ARGS:
                    key, position, limit = BOUNDED_ARGS[name]
                    given = kws.get(key, pos[position] if len(pos) > position else None)
                    if isinstance(given, int | np.integer) and abs(int(given)) > limit:
                        raise ValueError(f"{name}: {key}={given} is larger than the allowed {limit}")
                if "dtype" in kws:
                    _check_dtype(self, kws["dtype"], node)
                self._guard(env, node, *pos, *kws.values())
                return fn(*pos, **kws)
        raise self._fail(f"{type(node).__name__} cannot be evaluated", node)  # unreachable after _check


def _check_dtype(expr: SafeExpression, value: Any, node: ast.AST) -> None:
    """Only plain numeric scalar dtypes: ``'(1e8,)f8'`` would make every element an array."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise expr._fail(f"dtype {value!r} is not a NumPy dtype", node) from None
    if dtype.shape or dtype.fields or dtype.kind not in "biufc":
        raise expr._fail(f"dtype {value!r} is not allowed (plain numeric dtypes only)", node)


def compile_expression(text: str, feature: str | None = None, n_inputs: int | None = None) -> SafeExpression:
    """Validate ``text`` and return a callable :class:`SafeExpression`.

    Parameters
    ----------
    text : str
        The ``func`` string from a config.
    feature : str, optional
        Feature name for error messages.
    n_inputs : int, optional
        Number of inputs the feature declares; checked against the lambda's parameters.

    Raises
    ------
    UnsafeExpressionError
        The expression uses a construct outside the safe subset, or its arity does not match.
    """
    return SafeExpression(text, feature, n_inputs)
