"""The store's areas stay narrow and true (monitor/store/protocols.py, issue 16 part 1).

Three promises, checked without opening a store:
- every public method of a back end is in exactly one area protocol, and every protocol method
  exists on the back end with the same parameters, defaults and (resolved) annotations;
- each module of the monitor that holds the store (a service, job, handler or command) touches
  only the areas it declares: every ``store.method`` on a name or ``self`` attribute annotated
  with a store protocol is in that protocol, every area it declares is used (a declaration
  wider than the code is flagged too), and ``app[keys.STORE]`` is never used undeclared;
- the analyser itself catches each kind of breach (small sources written here).

The analysis reads the modules' syntax trees (``ast``) and resolves annotations through their
imports, so names imported only under ``TYPE_CHECKING`` count.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import sys
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from monitor.store import core, protocols
from monitor.store.protocols import AREAS, Store

ROOT = Path(__file__).resolve().parents[1]
# The application's wiring opens the whole store and hands each service its part.
WIRING = frozenset({"monitor/app.py", "monitor/keys.py"})
# Back ends that implement every area, by name (PostgreSQL's driver is imported only by its cases).
BACKENDS = {"sqlite": ("monitor.store.core", "SQLiteStore"), "postgresql": ("monitor.store.postgres", "PostgresStore")}


def _backend(name: str) -> type:
    module, attribute = BACKENDS[name]
    return getattr(importlib.import_module(module), attribute)


def members(area: type) -> frozenset[str]:
    return frozenset(name for name, value in vars(area).items() if callable(value) and not name.startswith("_"))


ALL_AREAS = frozenset(AREAS)


def area_names(areas: frozenset[type]) -> str:
    return "+".join(sorted(area.__name__ for area in areas))


# --- the protocols against the back ends ---------------------------------------------------------


def test_store_is_every_area_and_core_reexports_it() -> None:
    assert core.Store is Store
    assert set(AREAS) == {base for base in Store.__mro__ if base in ALL_AREAS}
    assert len(set(AREAS)) == len(AREAS) == 14


@pytest.mark.parametrize("name", BACKENDS)
def test_every_public_method_is_in_exactly_one_area(name: str) -> None:
    backend = _backend(name)
    public = {name for name in dir(backend) if not name.startswith("_") and inspect.isfunction(getattr(backend, name))}
    homes = {name: [area.__name__ for area in AREAS if name in members(area)] for name in public}
    assert {name: found for name, found in homes.items() if len(found) != 1} == {}
    declared = set().union(*(members(area) for area in AREAS))
    assert declared - public == set(), "protocol methods the back end lacks"


def _hints(function: object, *namespaces: dict[str, object]) -> dict[str, object]:
    merged: dict[str, object] = {}
    for namespace in namespaces:
        merged.update(namespace)
    return typing.get_type_hints(function, globalns=merged)


@pytest.mark.parametrize("name", BACKENDS)
def test_every_protocol_method_has_the_back_ends_signature(name: str) -> None:
    backend = _backend(name)
    differences = []
    for area in AREAS:
        for name in sorted(members(area)):
            declared, implemented = vars(area)[name], getattr(backend, name)
            shape = [(p.name, p.kind, p.default) for p in inspect.signature(declared).parameters.values()]
            actual = [(p.name, p.kind, p.default) for p in inspect.signature(implemented).parameters.values()]
            # Annotations are strings (postponed); resolve both in their own modules. TokenInfo and
            # friends live in core, which the protocols import only for type checking.
            declared_hints = _hints(declared, vars(core), vars(protocols))
            actual_hints = _hints(implemented, vars(core), vars(sys.modules[implemented.__module__]))
            if shape != actual or declared_hints != actual_hints:
                differences.append(f"{area.__name__}.{name}{inspect.signature(declared)} != {backend.__name__}{inspect.signature(implemented)}")
    assert differences == []


# --- who touches what ----------------------------------------------------------------------------


@dataclass
class Binding:
    """A name (or ``self`` attribute) that holds the store as the given areas."""

    where: str
    areas: frozenset[type]
    used: set[type] = field(default_factory=set)
    escapes: bool = False  # handed on somewhere the analysis cannot follow: no "unused" verdict


@functools.cache
def _module(name: str) -> ModuleAnalysis | None:
    """An imported module's syntax tree, to read what its functions declare (not analysed)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return ModuleAnalysis(Path(spec.origin).read_text(), name)


def _areas_of_object(value: object) -> frozenset[type] | None:
    if not isinstance(value, type):
        return None
    if getattr(value, "_is_protocol", False):
        found = frozenset(base for base in value.__mro__ if base in ALL_AREAS)
    elif value.__module__.startswith("monitor.store."):  # a back end: the areas it implements
        found = frozenset(area for area in AREAS if all(callable(getattr(value, m, None)) for m in members(area)))
    else:
        found = frozenset()
    return found or None


def _is_store_key(node: ast.AST) -> bool:
    key = node.slice if isinstance(node, ast.Subscript) else None
    return (isinstance(key, ast.Attribute) and key.attr == "STORE") or (isinstance(key, ast.Name) and key.id == "STORE")


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class ModuleAnalysis:
    def __init__(self, source: str, name: str) -> None:
        self.name = name
        self.tree = ast.parse(source)
        self.imports: dict[str, tuple[str, str]] = {}
        for node in ast.walk(self.tree):  # also under TYPE_CHECKING and inside functions
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (node.module, alias.name)
        self.classes = {node.name: node for node in self.tree.body if isinstance(node, ast.ClassDef)}
        self.functions = {node.name: node for node in self.tree.body if isinstance(node, _FUNCTIONS)}
        self.parents = {child: parent for parent in ast.walk(self.tree) for child in ast.iter_child_nodes(parent)}
        self.findings: list[str] = []
        self.bindings: list[Binding] = []
        self._analysed = False

    # annotations -> areas

    def areas_of(self, expr: ast.expr | None) -> frozenset[type] | None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return self.areas_of(ast.parse(expr.value, mode="eval").body)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):  # Store | None
            return self.areas_of(expr.left) or self.areas_of(expr.right)
        if isinstance(expr, ast.Name):
            if expr.id in self.classes:  # a protocol declared here: the areas of its bases
                bases = [self.areas_of(base) for base in self.classes[expr.id].bases]
                return frozenset().union(*(found for found in bases if found)) or None
            if expr.id in self.imports and self.imports[expr.id][0].startswith("monitor."):  # store protocols live there
                module, attribute = self.imports[expr.id]
                return _areas_of_object(getattr(importlib.import_module(module), attribute, None))
        return None

    def parameter_areas(self, callee: str, position: int | None, keyword: str | None) -> frozenset[type] | None:
        """The areas ``callee`` (a function or class of this module, or imported into it)
        declares for the argument at ``position`` or named ``keyword``."""
        if callee in self.imports:
            module = _module(self.imports[callee][0])
            return None if module is None else module.parameter_areas(self.imports[callee][1], position, keyword)
        node: ast.AST | None = self.functions.get(callee)
        skip = 0
        if callee in self.classes:
            node = next((n for n in self.classes[callee].body if isinstance(n, _FUNCTIONS) and n.name == "__init__"), None)
            skip = 1
        if not isinstance(node, _FUNCTIONS):
            return None
        positional = [*node.args.posonlyargs, *node.args.args][skip:]
        if keyword is not None:
            found = [a for a in [*positional, *node.args.kwonlyargs] if a.arg == keyword]
            return self.areas_of(found[0].annotation) if found else None
        assert position is not None
        return self.areas_of(positional[position].annotation) if position < len(positional) else None

    # walking

    def analyse(self) -> ModuleAnalysis:
        if not self._analysed:
            self._analysed = True
            self._body(self.tree.body, {}, None, None)
        return self

    def _body(self, nodes: list[ast.stmt], scope: dict[str, Binding], attributes: dict[str, Binding] | None, self_name: str | None) -> None:
        for node in nodes:
            if isinstance(node, ast.ClassDef):
                self._class(node)
            elif isinstance(node, _FUNCTIONS):
                self._function(node, scope, None, None)
            else:
                self._statements([node], scope, attributes, self_name)

    def _class(self, node: ast.ClassDef) -> None:
        attributes: dict[str, Binding] = {}
        init = next((n for n in node.body if isinstance(n, _FUNCTIONS) and n.name == "__init__"), None)
        if init is not None and init.args.args:
            me = init.args.args[0].arg
            typed = {a.arg: self.areas_of(a.annotation) for a in [*init.args.args, *init.args.kwonlyargs]}
            for statement in ast.walk(init):
                target, areas = None, None
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.value, ast.Name):
                    target, areas = statement.targets[0], typed.get(statement.value.id)
                elif isinstance(statement, ast.AnnAssign):
                    target, areas = statement.target, self.areas_of(statement.annotation)
                if areas and isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == me:
                    attributes[target.attr] = self._bind(f"{node.name}.{target.attr}", areas, statement.lineno)
        for item in node.body:
            if isinstance(item, _FUNCTIONS):
                self._function(item, {}, attributes, item.args.args[0].arg if item.args.args else None)

    def _bind(self, what: str, areas: frozenset[type], line: int) -> Binding:
        binding = Binding(f"{self.name}:{line} {what}", areas)
        self.bindings.append(binding)
        return binding

    def _function(self, node: ast.AST, outer: dict[str, Binding], attributes: dict[str, Binding] | None, self_name: str | None) -> None:
        scope = dict(outer)
        arguments = node.args  # type: ignore[attr-defined]
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]:
            if argument is None:
                continue
            areas = self.areas_of(argument.annotation)
            if areas:
                scope[argument.arg] = self._bind(f"{getattr(node, 'name', 'lambda')}({argument.arg})", areas, argument.lineno)
                continue
            scope.pop(argument.arg, None)
            if argument.arg == "store" and isinstance(node, _FUNCTIONS):
                self.findings.append(f"{self.name}:{argument.lineno} parameter 'store' of {node.name} has no store protocol annotation")
        own = list(self._own(node))
        for statement in own:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                areas = self.areas_of(statement.annotation)
                if areas:
                    scope[statement.target.id] = self._bind(f"{getattr(node, 'name', 'lambda')}: {statement.target.id}", areas, statement.lineno)
        self._check(own, scope, attributes, self_name)
        for nested in own:
            if isinstance(nested, ast.ClassDef):
                self._class(nested)
            elif isinstance(nested, (*_FUNCTIONS, ast.Lambda)) and nested is not node:
                self._function(nested, scope, attributes, self_name)

    def _own(self, node: ast.AST) -> typing.Iterator[ast.AST]:
        """``node``'s nodes, nested scopes included but not entered."""
        for child in ast.iter_child_nodes(node):
            yield child
            if not isinstance(child, _SCOPES):
                yield from self._own(child)

    def _statements(self, nodes: list[ast.stmt], scope: dict[str, Binding], attributes: dict[str, Binding] | None, self_name: str | None) -> None:
        own = [n for node in nodes for n in [node, *self._own(node)]]
        self._check(own, scope, attributes, self_name)
        for nested in own:
            if isinstance(nested, (*_FUNCTIONS, ast.Lambda)):
                self._function(nested, scope, attributes, self_name)

    def _holder(self, node: ast.AST, scope: dict[str, Binding], attributes: dict[str, Binding] | None, self_name: str | None) -> Binding | None:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            return scope.get(node.id)
        if attributes and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == self_name:
            return attributes.get(node.attr)
        return None

    def _check(self, nodes: list[ast.AST], scope: dict[str, Binding], attributes: dict[str, Binding] | None, self_name: str | None) -> None:
        wiring = self.name in WIRING
        for node in nodes:
            if isinstance(node, ast.Subscript) and _is_store_key(node) and not wiring:
                self._raw_store(node)
                continue
            binding = self._holder(node, scope, attributes, self_name)
            if binding is None:
                continue
            parent = self.parents.get(node)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                homes = [area for area in binding.areas if parent.attr in members(area)]
                if homes:
                    binding.used.update(homes)
                else:
                    self.findings.append(f"{self.name}:{parent.lineno} {parent.attr} is not in {area_names(binding.areas)} ({binding.where})")
            elif isinstance(parent, ast.Call) and node is not parent.func:
                self._handed_on(node, parent, binding)
            else:
                binding.escapes = True

    def _handed_on(self, node: ast.AST, call: ast.Call, binding: Binding) -> None:
        function, offset = call.func, 0
        if isinstance(function, ast.Attribute) and function.attr in ("to_thread", "run_in_executor") and call.args:
            function, offset = call.args[0], 1
        keyword = next((k.arg for k in call.keywords if k.value is node), None)
        position = None if keyword is not None else call.args.index(node) - offset  # type: ignore[arg-type]
        needed = self.parameter_areas(function.id, position, keyword) if isinstance(function, ast.Name) else None
        if needed is None:
            binding.escapes = True
        elif not needed <= binding.areas:
            self.findings.append(f"{self.name}:{call.lineno} hands {area_names(binding.areas)} to {function.id} (needs {area_names(needed)})")  # type: ignore[union-attr]
        else:
            binding.used.update(needed)

    def _raw_store(self, node: ast.Subscript) -> None:
        parent = self.parents.get(node)
        if isinstance(parent, ast.AnnAssign) and parent.value is node and self.areas_of(parent.annotation):
            return  # store: SomeArea = request.app[keys.STORE]
        if isinstance(parent, ast.Call) and node is not parent.func:
            return  # handed to a function or class that declares what it takes
        if isinstance(parent, ast.keyword):
            return
        self.findings.append(f"{self.name}:{node.lineno} the app's store used without a declared area (annotate: store: SomeStore = ...[keys.STORE])")

    def verdict(self) -> list[str]:
        """Every breach in this module: the findings, plus declarations wider than their use."""
        self.analyse()
        findings = list(self.findings)
        if self.name not in WIRING:
            for binding in self.bindings:
                if binding.areas == ALL_AREAS:
                    findings.append(f"{binding.where} takes the whole Store; declare the areas it uses")
                elif not binding.escapes and binding.areas - binding.used:
                    findings.append(f"{binding.where} declares {area_names(binding.areas - binding.used)} but never uses it")
        return findings


def _monitor_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "monitor").rglob("*.py") if "store" not in p.relative_to(ROOT / "monitor").parts[:1])


def _declared(path: Path) -> ModuleAnalysis:
    return ModuleAnalysis(path.read_text(), str(path.relative_to(ROOT))).analyse()


def test_each_module_touches_only_the_areas_it_declares() -> None:
    analyses = [_declared(path) for path in _monitor_modules()]
    assert [finding for analysis in analyses for finding in analysis.verdict()] == []
    # The check saw the services that matter (an analysis that finds nothing proves nothing).
    holders = {analysis.name for analysis in analyses if analysis.bindings}
    assert {"monitor/risk/service.py", "monitor/alerts/delivery.py", "monitor/retention.py", "monitor/http/sessions.py", "monitor/cli/main.py"} <= holders


# --- the analyser catches each kind of breach ----------------------------------------------------

HEADER = """
import asyncio
from typing import Protocol
from monitor import keys
from monitor.store.core import Store
from monitor.store.protocols import CaseloadStore, RiskStore, SessionStore, TrendStore
"""


def _findings(source: str) -> list[str]:
    return ModuleAnalysis(HEADER + textwrap.dedent(source), "monitor/http/example.py").verdict()


def test_analyser_passes_a_module_that_keeps_to_its_areas() -> None:
    source = """
        class Booking(SessionStore, CaseloadStore, Protocol): ...

        async def _may(store: CaseloadStore, who: str) -> bool:
            return await asyncio.to_thread(store.on_caseload, who, "c1")

        async def handler(request):
            store: Booking = request.app[keys.STORE]
            if await _may(store, "t1"):
                return store.get_session("s1")

        class Job:
            def __init__(self, store: RiskStore) -> None:
                self._store = store

            def run(self):
                return self._store.live_sessions()

        def build(store: TrendStore):
            return store.trend_hours(0, 1, None)

        async def trends(request):
            return await asyncio.to_thread(build, request.app[keys.STORE])
    """
    assert _findings(source) == []


@pytest.mark.parametrize(
    ("source", "breach"),
    [
        ("def f(store: TrendStore):\n    return store.get_session('s1')\n", "get_session is not in TrendStore"),
        ("class J:\n    def __init__(self, store: RiskStore):\n        self._s = store\n    def run(self):\n        self._s.save_summary(None, 0)\n", "save_summary is not in RiskStore"),
        ("async def h(request):\n    return request.app[keys.STORE].list_sessions()\n", "without a declared area"),
        ("async def h(request):\n    store = request.app[keys.STORE]\n    return store.list_sessions()\n", "without a declared area"),
        ("def f(store: Store):\n    return store.get_session('s1')\n", "takes the whole Store"),
        ("class Both(SessionStore, RiskStore, Protocol): ...\ndef f(store: Both):\n    return store.get_session('s1')\n", "declares RiskStore but never uses it"),
        ("def g(store: CaseloadStore):\n    return store.caseload()\ndef f(store: SessionStore):\n    store.get_session('s')\n    return g(store)\n", "hands SessionStore to g (needs CaseloadStore)"),
        ("def f(store, x):\n    return store.get_session(x)\n", "parameter 'store' of f has no store protocol annotation"),
    ],
    ids=["outside-area", "self-attribute", "raw-app-store", "unannotated-local", "whole-store", "unused-area", "hand-on-wider", "unannotated-param"],
)
def test_analyser_catches(source: str, breach: str) -> None:
    findings = _findings(source)
    assert any(breach in finding for finding in findings), findings
