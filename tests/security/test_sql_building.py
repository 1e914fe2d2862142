"""SQL is written as literals and composed only with psycopg.sql: a static check of the package.

Why a static check: an injection needs only one statement built by pasting text, and no test of
behaviour can visit every query with every hostile value. Reading the source can. The rules:

1. No SQL-looking text is built with an f-string, `%`, `str.format`, `+`/`+=` or `str.join`.
   `psycopg.sql.SQL(...).format(...)` and `.join(...)` are the safe way (identifiers and
   literals are quoted by the driver) and are not string formatting.
2. The query handed to `.execute` / `.executemany` / `.stream` / `.copy` is a string literal, a
   constant holding one (or a concatenation of them), or a psycopg.sql composition, as seen
   through local variables, annotated parameters and same-module helpers' return annotations.
3. `sql.SQL(x)` wraps only literal text: `sql.SQL(user_value)` would defeat rule 2.

Anything the checker cannot prove counts as a violation; the one deliberate exception
(migrations read from the package's own .sql files) is listed in ALLOWED with its reason.
The self-tests at the bottom feed the checker bad and good snippets, so it cannot pass by
checking nothing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "aggregator"

# (module path relative to the package, function name): why its query may come from elsewhere.
ALLOWED = {
    ("db/migrate.py", "migrate"): "runs the package's own migration files, which are multi-statement scripts",
}

QUERY_METHODS = frozenset({"execute", "executemany", "stream", "copy"})
SQL_FACTORIES = frozenset({"SQL", "Composed", "Identifier", "Literal", "Placeholder"})
SQL_TYPES = re.compile(r"\b(sql\.)?(Composable|Composed|SQL)\b")

# Upper-case keywords are how SQL is written here; the lower-case patterns catch statement
# shapes in any case without flagging English ("from", "where") in messages.
_UPPER = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|FROM|JOIN|VALUES|RETURNING|ORDER BY|GROUP BY|LIMIT|OFFSET|SET|"
    r"ON CONFLICT|TRUNCATE|LISTEN|NOTIFY|COPY|CREATE|DROP|ALTER|UNION|HAVING)\b"
)
# AND / OR alone are also web-search syntax ("a OR b"); they count next to a comparison.
_CONDITION = re.compile(r"\b(AND|OR)\b[\s\S]*([=<>]|\b(IS|IN|LIKE|ILIKE|ANY)\b)|([=<>]|\b(IS|IN|LIKE|ILIKE|ANY)\b)"
                        r"[\s\S]*\b(AND|OR)\b")
_ANY_CASE = re.compile(
    r"\bselect\b[\s\S]+\bfrom\b|\binsert\s+into\b|\bdelete\s+from\b|\bupdate\s+\w+\s+set\b|"
    r"\b(create|drop|alter|truncate)\s+table\b",
    re.I,
)


def looks_like_sql(text: str) -> bool:
    return bool(_UPPER.search(text) or _CONDITION.search(text) or _ANY_CASE.search(text))


@dataclass(frozen=True)
class Violation:
    where: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.message}"


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)


def _text_of(node: ast.AST) -> str | None:
    """The literal text of a string constant or the fixed parts of an f-string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
        return node.value.decode("latin-1")
    if isinstance(node, ast.JoinedStr):
        return "?".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return None


def _add_leaves(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _add_leaves(node.left) + _add_leaves(node.right)
    return [node]


def _is_sql_module(node: ast.AST) -> bool:
    """`sql` or `psycopg.sql`: the receiver of sql.SQL(...) and friends."""
    if isinstance(node, ast.Name):
        return node.id == "sql"
    return isinstance(node, ast.Attribute) and node.attr == "sql" and isinstance(node.value, ast.Name) \
        and node.value.id == "psycopg"


def _is_sql_factory_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
        and node.func.attr in SQL_FACTORIES and _is_sql_module(node.func.value)


class _Scope:
    """What a name stands for: assignments in the enclosing function, its parameters, the module."""

    def __init__(self, module: ast.Module, function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        self.module = module
        self.function = function
        self.functions = {n.name: n for n in module.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}

    def assignments(self, name: str) -> list[tuple[ast.AST, int | None]]:
        """Values bound to `name` (with the tuple position when unpacked), innermost scope first."""
        for body in ([self.function] if self.function else []) + [self.module]:
            found = _bindings(body, name, top_level_only=body is self.module)
            if found:
                return found
        return []

    def parameter_annotation(self, name: str) -> ast.AST | None:
        if self.function is None:
            return None
        args = self.function.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.arg == name:
                return arg.annotation
        return None


def _bindings(body: ast.AST, name: str, *, top_level_only: bool) -> list[tuple[ast.AST, int | None]]:
    nodes = body.body if top_level_only and isinstance(body, ast.Module) else list(ast.walk(body))
    found: list[tuple[ast.AST, int | None]] = []
    for node in nodes:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            found.append((node, None))  # `q += ...` builds text: never provable
            continue
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id == name:
                found.append((value, None))
            elif isinstance(target, ast.Tuple):
                for i, element in enumerate(target.elts):
                    if isinstance(element, ast.Name) and element.id == name:
                        found.append((value, i))
    return found


class Checker:
    """Collects the violations of one module; see the module docstring for the rules."""

    def __init__(self, source: str, where: str) -> None:
        self.where = where
        self.tree = ast.parse(source)
        self.violations: list[Violation] = []

    def run(self) -> list[Violation]:
        self._visit(self.tree, None)
        return self.violations

    def _report(self, node: ast.AST, message: str) -> None:
        self.violations.append(Violation(self.where, getattr(node, "lineno", 0), message))

    def _visit(self, node: ast.AST, function: ast.FunctionDef | ast.AsyncFunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            self._check_node(child, _Scope(self.tree, inner))
            self._visit(child, inner)

    # -- rule 1: no SQL text built by string formatting ---------------------------------------
    def _check_node(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, ast.JoinedStr) and looks_like_sql(_text_of(node) or ""):
            self._report(node, "f-string builds SQL text")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and self._sql_text(node.left, scope):
            self._report(node, "% formatting builds SQL text")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            self._check_concatenation(node, scope)
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add | ast.Mod) \
                and self._sql_text(node.value, scope):
            self._report(node, "+= / %= builds SQL text")
        elif isinstance(node, ast.Call):
            self._check_call(node, scope)

    def _check_concatenation(self, node: ast.BinOp, scope: _Scope) -> None:
        leaves = _add_leaves(node)
        if any(self._sql_text(leaf, scope) for leaf in leaves) \
                and not all(self._literal(leaf, scope) for leaf in leaves):
            self._report(node, "+ concatenates SQL text with a value")

    def _check_call(self, node: ast.Call, scope: _Scope) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("format", "join") and self._sql_text(func.value, scope):
            self._report(node, f"str.{func.attr} builds SQL text (use psycopg.sql)")
        wraps_text = _is_sql_factory_call(node) and isinstance(func, ast.Attribute) and func.attr == "SQL"
        if wraps_text and (not node.args or not self._literal(node.args[0], scope)):
            self._report(node, "sql.SQL() wraps text that is not a literal")
        if isinstance(func, ast.Attribute) and func.attr in QUERY_METHODS and self._is_query_call(node):
            query = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "query")
            if not self._safe_query(query, scope) and not self._allowed(scope):
                self._report(node, f".{func.attr}() is given a query that is neither a literal nor psycopg.sql")

    @staticmethod
    def _is_query_call(node: ast.Call) -> bool:
        func = node.func
        assert isinstance(func, ast.Attribute)
        if isinstance(func.value, ast.Name) and func.value.id == "copy":  # the standard library's copy.copy()
            return False
        return bool(node.args) or any(k.arg == "query" for k in node.keywords)

    def _allowed(self, scope: _Scope) -> bool:
        return scope.function is not None and (self.where, scope.function.name) in ALLOWED

    # -- what counts as literal, SQL-looking, or composed --------------------------------------
    def _sql_text(self, node: ast.AST, scope: _Scope, depth: int = 0) -> bool:
        """Is this a string (literal, f-string, or a name bound to one) whose text looks like SQL?"""
        text = _text_of(node)
        if text is not None:
            return looks_like_sql(text)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
            return any(self._sql_text(leaf, scope, depth) for leaf in (node.left, node.right))
        if isinstance(node, ast.Name) and depth < 5:
            return any(index is None and self._sql_text(value, scope, depth + 1)
                       for value, index in scope.assignments(node.id))
        return False

    def _literal(self, node: ast.AST, scope: _Scope, depth: int = 0) -> bool:
        """Text fixed in the source: constants, their concatenations and choices between them."""
        if _is_str(node):
            return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return all(self._literal(leaf, scope, depth) for leaf in _add_leaves(node))
        if isinstance(node, ast.IfExp):
            return self._literal(node.body, scope, depth) and self._literal(node.orelse, scope, depth)
        if isinstance(node, ast.Name) and depth < 5:
            bound = scope.assignments(node.id)
            return bool(bound) and all(index is None and self._literal(value, scope, depth + 1)
                                       for value, index in bound)
        return False

    def _safe_query(self, node: ast.AST, scope: _Scope, depth: int = 0) -> bool:
        if self._literal(node, scope):
            return True
        if isinstance(node, ast.IfExp):
            return self._safe_query(node.body, scope, depth) and self._safe_query(node.orelse, scope, depth)
        if isinstance(node, ast.Call):
            return self._composed_call(node, scope, depth, None)
        if isinstance(node, ast.Name) and depth < 5:
            annotation = scope.parameter_annotation(node.id)
            if annotation is not None:
                return _query_annotation(annotation)
            bound = scope.assignments(node.id)
            return bool(bound) and all(
                self._safe_query(value, scope, depth + 1) if index is None
                else isinstance(value, ast.Call) and self._composed_call(value, scope, depth + 1, index)
                for value, index in bound)
        return False

    def _composed_call(self, node: ast.Call, scope: _Scope, depth: int, index: int | None) -> bool:
        """sql.SQL(...) and friends, .format()/.join() on a composition, or a same-module helper
        whose return annotation (or its `index`-th tuple element) is a psycopg.sql type."""
        func = node.func
        if index is None and _is_sql_factory_call(node):
            return True
        if index is None and isinstance(func, ast.Attribute) and func.attr in ("format", "join"):
            return self._safe_query(func.value, scope, depth + 1) and not self._literal(func.value, scope)
        if isinstance(func, ast.Name) and func.id in scope.functions:
            returns = scope.functions[func.id].returns
            if returns is None:
                return False
            if index is not None:
                if not (isinstance(returns, ast.Subscript) and isinstance(returns.slice, ast.Tuple)):
                    return False
                elements = returns.slice.elts
                return index < len(elements) and bool(SQL_TYPES.search(ast.unparse(elements[index])))
            return bool(SQL_TYPES.search(ast.unparse(returns)))
        return False


def _query_annotation(annotation: ast.AST) -> bool:
    """A parameter typed only as psycopg.sql or LiteralString: what its callers may pass is then
    checked by the type checker; a parameter that may be any `str` proves nothing."""
    members = [m.strip() for m in ast.unparse(annotation).strip("'\"").split("|")]
    return all(SQL_TYPES.fullmatch(m) or m in ("LiteralString", "typing.LiteralString") for m in members)


def check_source(source: str, where: str = "snippet.py") -> list[Violation]:
    return Checker(source, where).run()


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_builds_sql_only_from_literals_and_psycopg_sql() -> None:
    modules = package_modules()
    assert len(modules) > 30 and PACKAGE / "db" / "posts.py" in modules
    found = [v for path in modules
             for v in check_source(path.read_text("utf-8"), path.relative_to(PACKAGE).as_posix())]
    assert not found, "SQL built outside psycopg.sql:\n" + "\n".join(map(str, found))


def test_every_allowed_exception_still_exists() -> None:
    """An exception for a function that is gone or renamed would silently cover a new one."""
    for module, function in ALLOWED:
        tree = ast.parse((PACKAGE / module).read_text("utf-8"))
        assert function in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, (module, function)


# -- the checker checked ---------------------------------------------------------------------

BAD = {
    "f-string in execute": 'def f(conn, t):\n    conn.execute(f"SELECT * FROM {t}")\n',
    "f-string constant": '_COLS = "a, b"\n_Q = f"SELECT {_COLS} FROM t"\ndef f(c):\n    c.execute(_Q)\n',
    "lower-case f-string": 'def f(conn, t):\n    conn.execute(f"select * from {t}")\n',
    "percent": 'def f(conn, t):\n    conn.execute("DELETE FROM %s" % t)\n',
    "format": 'def f(conn, t):\n    conn.execute("SELECT a FROM t WHERE b = {}".format(t))\n',
    "format on constant": '_Q = "SELECT a FROM t WHERE b = {}"\ndef f(conn, t):\n    conn.execute(_Q.format(t))\n',
    "plus": 'def f(conn, t):\n    conn.execute("SELECT a FROM t WHERE b = " + t)\n',
    "plus-equals": 'def f(conn, t):\n    q = "SELECT a FROM t"\n    q += " WHERE b = " + t\n    conn.execute(q)\n',
    "str join": 'def f(conn, conds):\n    conn.execute("SELECT a FROM t WHERE " + " AND ".join(conds))\n',
    "condition text": 'def f(c):\n    return f"a = %s AND {c}"\n',
    "bytes format": 'def f(conn, t):\n    conn.execute(b"SELECT a FROM t WHERE b = %s" % t)\n',
    "variable query": 'def f(conn, q):\n    conn.execute(q)\n',
    "attribute query": 'def f(conn, m):\n    conn.execute(m.text)\n',
    "sql.SQL of a value": 'from psycopg import sql\ndef f(conn, t):\n    conn.execute(sql.SQL(t))\n',
    "sql.SQL of an f-string": 'from psycopg import sql\ndef f(conn, t):\n    conn.execute(sql.SQL(f"SELECT {t}"))\n',
    "cursor copy": 'def f(conn, t):\n    conn.cursor().copy("COPY " + t + " FROM STDIN")\n',
    "executemany keyword": 'def f(cur, t):\n    cur.executemany(query=f"INSERT INTO {t} VALUES (%s)", params_seq=[])\n',
    "str parameter": 'def run(conn, query: str):\n    conn.execute(query)\n',
    "str or composed parameter": ('from psycopg import sql\n'
                                  'def run(conn, q: str | sql.Composed):\n    conn.execute(q)\n'),
    "helper returning str": 'def build(t) -> str:\n    return t\ndef f(conn, t):\n    conn.execute(build(t))\n',
    "unpacked str": ('def build(t) -> tuple[str, dict]:\n    return t, {}\n'
                     'def f(conn, t):\n    q, p = build(t)\n    conn.execute(q, p)\n'),
}

GOOD = {
    "literal": 'def f(conn, v):\n    conn.execute("SELECT a FROM t WHERE b = %(v)s", {"v": v})\n',
    "literal constant": '_Q = """\nSELECT a FROM t WHERE b = %s\n"""\ndef f(conn, v):\n    conn.execute(_Q, (v,))\n',
    "concatenated literals": '_Q = "SELECT a " + "FROM t"\ndef f(conn):\n    conn.execute(_Q)\n',
    "choice of literals": 'def f(conn, x):\n    conn.execute("SELECT 1" if x else "SELECT 2")\n',
    "composition": ('from psycopg import sql\ndef f(conn, t, v):\n'
                    '    conn.execute(sql.SQL("SELECT a FROM {} WHERE b = %s").format(sql.Identifier(t)), (v,))\n'),
    "composed constant": ('from psycopg import sql\n_C = sql.SQL("a, b")\n'
                          '_Q = sql.SQL("SELECT {c} FROM t").format(c=_C)\ndef f(conn):\n    conn.execute(_Q)\n'),
    "local composition": ('from psycopg import sql\ndef f(conn, cond):\n'
                          '    statement = sql.SQL("SELECT a FROM t WHERE {}").format(cond)\n'
                          '    conn.execute(statement)\n'),
    "sql.SQL of a literal choice": ('from psycopg import sql\ndef f(conn, x):\n'
                                    '    order = "a DESC" if x else "a"\n'
                                    '    conn.execute(sql.SQL("SELECT a FROM t ORDER BY {}")'
                                    '.format(sql.SQL(order)))\n'),
    "sql join": ('from psycopg import sql\ndef f(conn, conds):\n'
                 '    conn.execute(sql.SQL("SELECT a FROM t WHERE {}").format(sql.SQL(" AND ").join(conds)))\n'),
    "annotated parameter": 'from psycopg import sql\ndef f(conn, q: sql.Composable):\n    conn.execute(q)\n',
    "LiteralString parameter": ('from typing import LiteralString\n'
                                'def run(conn, q: LiteralString):\n    conn.execute(q)\n'),
    "helper returning composed": ('from psycopg import sql\ndef build() -> tuple[sql.Composed, dict]:\n'
                                  '    return sql.SQL("SELECT 1").format(), {}\n'
                                  'def f(conn):\n    q, p = build()\n    conn.execute(q, p)\n'),
    "english message": 'def f(url):\n    raise ValueError(f"cannot read from {url}: select another")\n',
    "search syntax": 'def f(words):\n    return " OR ".join(words)\n',
    "copy module": 'import copy\ndef f(x):\n    return copy.copy(x)\n',
}


@pytest.mark.parametrize("source", BAD.values(), ids=BAD.keys())
def test_checker_flags_sql_built_from_text(source: str) -> None:
    assert check_source(source), source


@pytest.mark.parametrize("source", GOOD.values(), ids=GOOD.keys())
def test_checker_accepts_literals_and_compositions(source: str) -> None:
    assert check_source(source) == [], source
