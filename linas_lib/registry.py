"""Name -> implementation registries, in the spirit of timm's model registry.

Super-networks, latency backends, predictors, algorithms, selection strategies and
stores are all looked up by name, so adding one is a decorator, never an edit to an
if/elif chain. Every registry fills itself the same three ways, on its first lookup:

* built-ins: the modules named in `builtins`, whose decorators register them;
* installed packages: the entry points of the registry's `group` (e.g.
  `linas.backends`), each imported only when its name is looked up, so a broken or
  heavy plugin costs nothing until it is used. An entry point that names a module
  rather than an object (`my_pkg.plugins`) is imported at once: its decorators
  register what it holds. A built-in name is never replaced by an entry point;
* plugin files: a Python file that a config names (`supernet.plugin_file`), executed
  once per process; its decorators may register into any registry.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that no implementation was registered under."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class PluginLoadError(ValueError):
    """An installed plugin (entry point) that failed to import.

    A ValueError, so a config validator that looks the name up reports it as a config
    error naming the field, not as a traceback."""


@functools.cache
def _all_entry_points():
    # one scan of the installed distributions' metadata serves every registry and the CLI
    from importlib.metadata import entry_points

    return entry_points()


def installed_entry_points(group: str):
    """The entry points installed packages declare in `group` (not loaded)."""
    return _all_entry_points().select(group=group)


def import_all_builtins() -> None:
    """Import every registry's built-in modules and scan the installed entry points (loading
    none): what each process's first lookup would do, done once by a process that forks
    (kfp.local's warm starter)."""
    for registry in Registry.instances:
        registry._import_builtins()
    _all_entry_points()


class Registry(Generic[T]):
    instances: list["Registry"] = []  # every registry, so tests can restore them all

    def __init__(self, kind: str, group: str | None = None, builtins: Sequence[str] = ()):
        Registry.instances.append(self)
        self.kind = kind
        self.group = group  # the entry-point group of installed plugins
        self.builtins = tuple(builtins)  # modules whose decorators register the built-ins
        self._entries: dict[str, T] = {}
        self._pending: dict[str, Any] = {}  # entry points not imported yet, by name
        self._builtins_imported = self._discovered = False

    def _import_builtins(self) -> None:
        if self._builtins_imported:
            return
        self._builtins_imported = True  # first: the built-in modules call register() while they import
        try:
            for module in self.builtins:
                importlib.import_module(module)
        except BaseException:
            self._builtins_imported = False  # the next lookup tries again and raises again, never half a registry
            raise

    def _discover(self) -> None:
        self._import_builtins()
        if self._discovered:
            return
        self._discovered = True
        for ep in installed_entry_points(self.group) if self.group else ():
            if ep.name in self._entries or ep.name in self._pending:
                continue
            if ep.attr is None:  # a module: its decorators register what it holds
                try:
                    ep.load()
                except Exception as exc:
                    self._discovered = False
                    raise self._load_error(ep, exc) from None
            else:
                self._pending[ep.name] = ep

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self._import_builtins()  # a plugin that reuses a built-in's name is refused here, not later
            if name in self._entries or name in self._pending:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        self._discover()
        if name in self._pending:
            self._load_entry_point(name)
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
            ) from None

    def _load_entry_point(self, name: str) -> None:
        ep = self._pending.pop(name)  # not pending while it imports: its module may register the name itself
        try:
            obj = ep.load()
        except Exception as exc:
            self._pending[name] = ep
            raise self._load_error(ep, exc) from None
        self._entries.setdefault(name, obj)

    def _load_error(self, ep, exc: Exception) -> PluginLoadError:
        return PluginLoadError(f"{self.kind} {ep.name!r} (entry point {ep.value!r} in group {self.group}) "
                               f"failed to load: {type(exc).__name__}: {exc}")

    def names(self) -> list[str]:
        self._discover()
        return sorted({*self._entries, *self._pending})

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries or name in self._pending

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# ---- plugin files --------------------------------------------------------------------------
_loaded_files: dict[str, Any] = {}


def load_plugin_file(path: str, field: str = "supernet.plugin_file") -> None:
    """Execute a plugin file the user named in the config (`field`); it registers its plugins.

    Once per process and path: every pipeline step validates the config again, and a file
    that registered its names must not register them twice.
    """
    import importlib.util
    import sys
    from pathlib import Path

    resolved = str(Path(path).expanduser().resolve())
    if resolved in _loaded_files:
        return
    if not Path(resolved).is_file():
        raise FileNotFoundError(f"{field} {path!r} does not exist")
    name = f"linas_plugin_{len(_loaded_files)}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(spec)
    _loaded_files[resolved] = module
    # in sys.modules while it runs, as for any import: dataclasses and pickling look the module up there
    sys.modules[name] = module
    # its folder first on sys.path while it loads, as for a script: it can import the modules beside it
    folder = str(Path(resolved).parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception:
        del _loaded_files[resolved]
        sys.modules.pop(name, None)
        raise
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
