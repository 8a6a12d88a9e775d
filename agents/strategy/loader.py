"""Strategies from the user's own file or package: ``path/to/file.py:ClassName`` or
``package.module:ClassName`` (decision 0021).

A reference is told from a built-in kind by its colon. The part before it is a file when it ends
in ``.py`` or contains a path separator (relative paths are taken from ``base_dir``: the folder
of the strategy config that names it, or the current directory on the command line), otherwise
an importable module name (installed, or on PYTHONPATH).

A file is executed once per content (cached by path, size and modification time) as a module of
its own, registered in ``sys.modules`` so Pydantic can resolve its annotations. Everything that
can go wrong is a ``StrategyLoadError`` naming the file and, where there is one, the line: a
missing file, a syntax error, an exception while importing (the line in the user's file where it
was raised or imported from), a missing class, a class that is not a ``Strategy``, that leaves
``decide`` abstract, whose ``Params`` is no ``StrategyParams`` or whose ``COLUMNS`` (or
``indicator_columns`` once built) names no indicator or a bad parameter (``rsi_1``, decision
0022); bad parameters name the line of the class.

A loaded strategy's ``decide`` is checked on every call (``checked``): an exception in it, or a
result that is not a valid ``Decision``, is a ``StrategyRuntimeError`` naming file, line and row.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import numbers
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Final

from agents.strategy.api import (
    Decision,
    IndicatorHistory,
    SignalSide,
    Strategy,
    StrategyConfigError,
    StrategyLoadError,
    StrategyParams,
    StrategyRuntimeError,
    check_indicator_columns,
)

__all__ = ["build_from_reference", "is_reference", "load_strategy_class", "source_of"]

_MODULE_PREFIX: Final = "tradebus_user_strategy_"
_REASON_MAX: Final = 2000  # Signal.reason
_NAME_MAX: Final = 64  # a key of Signal.indicators
# (path, size, mtime_ns) -> module: a grid builds the strategy once per point, the agent once per
# instance; the file runs once.
_FILES: dict[tuple[str, int, int], ModuleType] = {}


def is_reference(kind: str) -> bool:
    """True for ``something:ClassName`` (a user strategy), False for a built-in kind name."""
    return ":" in kind


def _split(reference: str) -> tuple[str, str]:
    target, _, name = reference.strip().rpartition(":")
    if not target.strip() or not name.strip():
        raise StrategyLoadError(
            f"strategy reference {reference!r} must be path/to/file.py:ClassName or package.module:ClassName"
        )
    return target.strip(), name.strip()


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def load_strategy_class(reference: str, base_dir: Path | None = None) -> type[Strategy]:
    """The Strategy class a reference names, checked (see the module docstring)."""
    target, name = _split(reference)
    if _is_file(target):
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        module, where = _load_file(path.resolve()), str(path.resolve())
    else:
        module, where = _import_module(target), target
    cls = getattr(module, name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy)
        hint = f"strategy classes in it: {', '.join(found)}" if found else "it defines no Strategy subclass"
        raise StrategyLoadError(f"no class {name!r} ({hint})", file=_file_of(module, where))
    _check_class(cls, name, module, where)
    return cls  # type: ignore[no-any-return]


def build_from_reference(reference: str, params: Mapping[str, Any] | None, base_dir: Path | None) -> Strategy:
    """An instance of the referenced class with validated ``params``, its ``decide`` checked."""
    cls = load_strategy_class(reference, base_dir)
    file, line = source_of(cls)
    try:
        strategy = cls(params or {})
    except StrategyConfigError as exc:
        raise StrategyLoadError(f"{cls.__name__}: {exc}", file=file, line=line) from None
    except Exception as exc:  # the user's __init__: say where it broke
        raise _raised(exc, exc.__traceback__, f"{cls.__name__}(...) raised", file, line) from None
    try:
        check_indicator_columns(strategy.indicator_columns, cls.__name__)
    except StrategyConfigError as exc:
        raise StrategyLoadError(str(exc), file=file, line=line) from None
    except Exception as exc:  # the user's indicator_columns property
        raise _raised(exc, exc.__traceback__, f"{cls.__name__}.indicator_columns raised", file, line) from None
    strategy.decide = checked(strategy, file, line)  # type: ignore[method-assign]
    return strategy


def source_of(obj: Any) -> tuple[str | None, int | None]:
    """The file and first line of a class or function (None where Python does not know)."""
    try:
        file = inspect.getsourcefile(obj)
        _, line = inspect.getsourcelines(obj)
    except (OSError, TypeError):
        return getattr(sys.modules.get(getattr(obj, "__module__", ""), None), "__file__", None), None
    return file, line


# ---------------------------------------------------------------------- loading


def _load_file(path: Path) -> ModuleType:
    try:
        stat = path.stat()
    except OSError:
        raise StrategyLoadError("strategy file not found", file=str(path)) from None
    if not path.is_file():
        raise StrategyLoadError("not a file", file=str(path))
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    module = _FILES.get(key)
    if module is not None:
        return module
    # One module name per file path: two files named alike in different folders do not clash.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"{_MODULE_PREFIX}{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StrategyLoadError("cannot be loaded as Python (is it a .py file?)", file=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        text = f": {exc.text.strip()}" if exc.text else ""
        raise StrategyLoadError(f"syntax error: {exc.msg}{text}", file=exc.filename or str(path), line=exc.lineno) from None
    except (Exception, SystemExit) as exc:  # anything the file raises at import is its error
        sys.modules.pop(module_name, None)
        raise _raised(exc, exc.__traceback__, "raised while loading", str(path), None) from None
    _FILES[key] = module
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise StrategyLoadError(
                f"no module {name!r} ({exc}); install the package or put its folder on PYTHONPATH"
            ) from None
        raise _raised(exc, exc.__traceback__, f"module {name!r} raised while importing", None, None) from None
    except SyntaxError as exc:
        raise StrategyLoadError(f"syntax error: {exc.msg}", file=exc.filename, line=exc.lineno) from None
    except Exception as exc:
        raise _raised(exc, exc.__traceback__, f"module {name!r} raised while importing", None, None) from None


def _file_of(module: ModuleType, fallback: str) -> str:
    return getattr(module, "__file__", None) or fallback


def _raised(exc: BaseException, tb: TracebackType | None, what: str, file: str | None, line: int | None) -> StrategyLoadError:
    """The error for an exception from user code: at the deepest line in ``file`` (the user's),
    else the deepest line outside tradebus and the standard library."""
    frames = traceback.extract_tb(tb)
    chosen = None
    if file is not None:
        chosen = next((f for f in reversed(frames) if Path(f.filename) == Path(file)), None)
    if chosen is None:
        inside = str(Path(__file__).resolve().parents[2])
        chosen = next((f for f in reversed(frames) if not f.filename.startswith((inside, sys.prefix, sys.base_prefix))
                       and not f.filename.startswith("<")), None)
    if chosen is not None:
        file, line = chosen.filename, chosen.lineno
    return StrategyLoadError(f"{what}: {type(exc).__name__}: {exc}", file=file, line=line)


def _check_class(cls: Any, name: str, module: ModuleType, where: str) -> None:
    file = _file_of(module, where)
    if not isinstance(cls, type):
        raise StrategyLoadError(f"{name!r} is a {type(cls).__name__}, not a class derived from agents.strategy.api.Strategy", file=file)
    _, line = source_of(cls)
    if not issubclass(cls, Strategy):
        raise StrategyLoadError(f"class {name} does not derive from agents.strategy.api.Strategy", file=file, line=line)
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise StrategyLoadError(f"class {name} does not implement {missing} (see agents/strategy/api.py)", file=file, line=line)
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, StrategyParams)):
        raise StrategyLoadError(f"{name}.Params must be a class derived from StrategyParams, got {params!r}", file=file, line=line)
    try:
        check_indicator_columns(cls.COLUMNS, f"{name}.COLUMNS")
    except StrategyConfigError as exc:
        raise StrategyLoadError(str(exc), file=file, line=line) from None


# ---------------------------------------------------------------------- checked decisions


def checked(strategy: Strategy, file: str | None, line: int | None) -> Callable[[IndicatorHistory, int], Decision]:
    """``strategy.decide`` with its result checked: a Decision with a side, a confidence in
    [0, 1], a reason of 1-2000 characters and ``used`` values that are numbers or None. A side
    given as text ("buy") is normalised; anything else raises StrategyRuntimeError."""
    decide = type(strategy).decide.__get__(strategy)
    decide_file, decide_line = source_of(type(strategy).decide)
    label = f"{type(strategy).__name__}.decide"

    def fail(problem: str, history: IndicatorHistory, i: int, at: tuple[str | None, int | None] = (decide_file, decide_line)) -> StrategyRuntimeError:
        where = f"{at[0] or file}:{at[1] or line}: " if (at[0] or file) else ""
        when = history.candle_time(i).isoformat() if 0 <= i < len(history) else "?"
        return StrategyRuntimeError(f"{where}{label} at row {i} (candle {when}): {problem}")

    def call(history: IndicatorHistory, i: int) -> Decision:
        try:
            decision = decide(history, i)
        except Exception as exc:
            error = _raised(exc, exc.__traceback__, "raised", decide_file or file, None)
            raise fail(f"raised {type(exc).__name__}: {exc}", history, i, (error.file, error.line)) from exc
        if not isinstance(decision, Decision):
            raise fail(f"returned {type(decision).__name__}, expected Decision(side, confidence, reason, used)", history, i)
        side, confidence, reason, used = decision
        if not isinstance(side, SignalSide):
            try:
                side = SignalSide(side)
            except ValueError:
                raise fail(f"side {side!r} is not BUY, SELL or HOLD", history, i) from None
            decision = decision._replace(side=side)
        if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0.0 <= confidence <= 1.0:
            raise fail(f"confidence {confidence!r} is not a number in [0, 1]", history, i)
        if not isinstance(reason, str) or not reason.strip() or len(reason) > _REASON_MAX:
            raise fail(f"reason {reason!r:.80} must be text of 1 to {_REASON_MAX} characters", history, i)
        if not isinstance(used, Mapping):
            raise fail(f"used must be a mapping of name -> number or None, got {type(used).__name__}", history, i)
        for name, value in used.items():
            if not isinstance(name, str) or not 0 < len(name) <= _NAME_MAX:
                raise fail(f"used: name {name!r} must be text of 1 to {_NAME_MAX} characters", history, i)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isinf(value)):
                raise fail(f"used[{name!r}] = {value!r} must be a finite number or None", history, i)
        return decision

    return call
