"""Plugin simulators: the modules a config's ``plugins:`` list names, imported by name.

A plugin is user code that registers a :class:`alfi.simulators.Simulator` subclass when
imported. Whatever goes wrong while importing it (a missing module, a syntax error, a name
error, a simulator that shadows another) becomes one :class:`alfi.config.ConfigError` line that
names the module, the file and line where it failed, and why.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from alfi.config import ConfigError

__all__ = ["import_plugin"]


def import_plugin(module: str) -> None:
    """Import a plugin module (from the working directory or ``sys.path``).

    Any failure is one :class:`ConfigError` line naming the module, the file and line where it
    failed and why (a syntax error, a name error, a simulator that shadows another, …).
    """
    # Console scripts do not put the working directory on sys.path; plugins live there.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module or module.startswith(f"{exc.name}."):
            raise ConfigError(
                f"invalid config at 'plugins': no module {module!r} in {os.getcwd()} or on sys.path"
            ) from None
        raise ConfigError(_plugin_failure(module, exc)) from None
    except Exception as exc:  # a plugin is user code: any error it raises is reported
        raise ConfigError(_plugin_failure(module, exc)) from None


def _plugin_failure(module: str, exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}, line {exc.lineno}"
        what = f"SyntaxError: {exc.msg}"
    else:
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename
        ]
        # The plugin's own line (where it called what failed) rather than ours, if it shows.
        own = module.replace(".", os.sep)
        mine = [f for f in frames if f.filename.endswith((f"{own}.py", f"{own}/__init__.py"))]
        frame = (mine or frames or [None])[-1]
        where = f"{frame.filename}, line {frame.lineno}" if frame else "?"
        what = f"{type(exc).__name__}: {exc}"
    return f"invalid config at 'plugins': cannot import {module!r} ({where}): {what}"
