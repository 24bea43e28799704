"""What an analyst's query may do, decided by ClickHouse's own parser before the query runs.

The SQL endpoint runs untrusted SQL on the engine that holds every tenant's rows, so each query
passes these checks on the tenant's read-only connection (``tenants.TenantSession``) first:

1. ``formatQuerySingleLine({q:String})``: the text is *data* to a function, never run. It parses
   one statement (multi-statements are a syntax error here, where chDB would run them all) and
   gives back a normalized text without comments; that text is what is checked and then run.
2. The statement kind, from the normalized text: SELECT, WITH, EXPLAIN, SHOW TABLES, SHOW
   DATABASES, SHOW CREATE, DESCRIBE and EXISTS only; ``INTO OUTFILE`` is refused (chDB writes the
   file even in read-only mode).
3. ``EXPLAIN AST`` (parsing only, nothing resolved or read): no function in ``denied`` (table
   functions other than the harmless generators, which reach files, URLs, other servers or other
   tables, and the scalar functions that read files, dictionaries or other tables by name); no
   table or identifier qualified with another database than the tenant's own, except the few
   harmless system tables of ``SYSTEM_TABLES``.
4. For queries, ``EXPLAIN QUERY TREE``: the analyzer's resolved tables. Every ``table_name`` must
   be in the tenant's database or ``SYSTEM_TABLES``, whatever spelling, alias, CTE, ``IN t`` or
   join reached it.

Each check denies on any match anywhere in the engine's output, so text a user smuggles into that
output (an alias with a newline) can add a refusal but never remove one. The checks are a second
line: the session itself is ``readonly=1`` with fixed limits, and its current database holds only
views filtered to the tenant (``tenants``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import re2

__all__ = [
    "ALLOWED_TABLE_FUNCTIONS",
    "SYSTEM_TABLES",
    "Checked",
    "Engine",
    "Guard",
    "SqlError",
    "denied_functions",
]

ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series", "generateseries"}
)
"""Table functions that only generate rows (everything else is refused)."""

_DENIED_SCALARS = frozenset(
    {
        "file",
        "joinget",
        "joingetornull",
        "hascolumnintable",
        "catboostevaluate",
        "naivebayesclassifier",
        "getclienthttpheader",
        "fuzzquery",
        "getmacro",
        "getserversetting",
    }
)
"""Scalar functions that read files, other tables or server configuration by name."""

SYSTEM_TABLES = frozenset(
    {
        "one",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "settings",
        "functions",
        "table_functions",
        "formats",
        "data_type_families",
        "time_zones",
        "aggregate_function_combinators",
        "collations",
        "keywords",
        "build_options",
    }
)
"""System tables a tenant may read: engine facts, nothing about data or other databases.
(clickhouse-connect reads ``system.settings`` when it connects; ``system.tables`` and
``system.columns`` would show every tenant's databases, so SHOW TABLES and DESCRIBE stand in.)"""

_KINDS = re2.compile(
    r"^(SELECT|WITH|\(|EXPLAIN|DESCRIBE|EXISTS (?:TABLE |VIEW |TEMPORARY TABLE )?|"
    r"SHOW (?:FULL )?TABLES|SHOW DATABASES|SHOW CREATE (?:TABLE|VIEW))"
)
_QUERY_KINDS = frozenset({"SELECT", "WITH", "("})
_OUTFILE = re2.compile(r"(?i)\bINTO\s+OUTFILE\b")
_FORMAT_TAIL = re2.compile(r"^(.*\S)\s+FORMAT\s+([A-Za-z][A-Za-z0-9_]*)$")
_SHOW_FROM = re2.compile(r"^SHOW (?:FULL )?TABLES (?:FROM|IN) (`[^`]*`|[A-Za-z0-9_]+)")
_QUALIFIED = re2.compile(
    r"(`[^`]*`|[A-Za-z_][A-Za-z0-9_]*)\s*\.\s*(`[^`]*`|[A-Za-z_][A-Za-z0-9_]*)"
)
_AST_NAME = re2.compile(r"(?m)^\s*(Function|TableIdentifier|Identifier) (\S+)")
_TREE_TABLE = re2.compile(r"table_name: (\S*)")
_TREE_FUNCTION = re2.compile(r"table_function_name: (\S*)")

READONLY, ACCESS_DENIED, SYNTAX_ERROR, BAD_ARGUMENTS = 164, 497, 62, 36


class SqlError(Exception):
    """A query refused or failed, as ClickHouse words it: ``Code: N. DB::Exception: ... (NAME)``.
    ``status`` is the HTTP answer (4xx: the query is at fault, never the server)."""

    def __init__(self, message: str, code: int, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status

    @classmethod
    def refused(cls, why: str, code: int = ACCESS_DENIED) -> SqlError:
        name = {READONLY: "READONLY", ACCESS_DENIED: "ACCESS_DENIED"}.get(code, "BAD_ARGUMENTS")
        status = 400 if code == BAD_ARGUMENTS else 403
        return cls(f"Code: {code}. DB::Exception: {why}. ({name})", code, status)


class Engine(Protocol):
    """Runs text on the tenant's read-only session (``tenants.TenantSession.text``)."""

    def text(self, sql: str, params: Mapping[str, str] | None = None) -> str: ...


@dataclass(frozen=True)
class Checked:
    """A query that passed: the normalized statement (without its FORMAT clause) and the output
    format it named, if any; ``kind`` is its leading keyword(s)."""

    sql: str
    fmt: str | None
    kind: str


def _escaped(value: str) -> str:
    """A parameter value in the escaped form ClickHouse binds ``{name:String}`` from."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith("`") and name.endswith("`") else name


def denied_functions(engine: Engine) -> frozenset[str]:
    """Every table function but the generators, and the scalar readers (lower case)."""
    names = engine.text("SELECT name FROM system.table_functions").split()
    return frozenset(n.lower() for n in names) - ALLOWED_TABLE_FUNCTIONS | _DENIED_SCALARS


class Guard:
    """The checks of the module docstring for one engine (the denied names are read once)."""

    def __init__(self, engine: Engine) -> None:
        self._denied = denied_functions(engine)

    def check(
        self,
        engine: Engine,
        query: str,
        *,
        database: str,
        databases: frozenset[str],
        params: Mapping[str, str] | None = None,
    ) -> Checked:
        """The statement ``query`` as it may run in ``database`` (``params`` bound), or SqlError
        naming why not. ``databases`` are the engine's databases: a name qualified with one of
        them other than ``database`` is another database's table."""
        normalized = engine.text(
            "SELECT formatQuerySingleLine({agentledger_sql_text:String})",
            {"agentledger_sql_text": _escaped(query)},
        ).strip()
        kind_match = _KINDS.match(normalized)
        if kind_match is None:
            raise SqlError.refused(
                "only SELECT, WITH, EXPLAIN, SHOW TABLES, SHOW DATABASES, SHOW CREATE, DESCRIBE "
                "and EXISTS run here: this endpoint is read-only",
                READONLY,
            )
        if _OUTFILE.search(normalized):
            raise SqlError.refused("INTO OUTFILE is not allowed here", READONLY)
        kind = kind_match.group(1).strip()
        fmt: str | None = None
        tail = _FORMAT_TAIL.match(normalized)
        if tail is not None:
            normalized, fmt = tail.group(1), tail.group(2)
        self._names_in_text(normalized, database, databases)
        if kind.startswith("SHOW") and "TABLES" in kind:
            shown = _SHOW_FROM.match(normalized)
            if shown is not None and _unquote(shown.group(1)) != database:
                raise SqlError.refused(f"SHOW TABLES shows your database {database} only")
        ast = engine.text(f"EXPLAIN AST {normalized}", params)
        for what, name in _AST_NAME.findall(ast):
            if what == "Function":
                if name.lower() in self._denied or name.lower().startswith("dict"):
                    raise SqlError.refused(f"function {name} is not allowed here")
            else:
                self._qualified(name.split(".", 1), database, databases)
        if kind in _QUERY_KINDS:
            tree = engine.text(f"EXPLAIN QUERY TREE {normalized}", params)
            for name in _TREE_FUNCTION.findall(tree):
                if name.rstrip(",").lower() not in ALLOWED_TABLE_FUNCTIONS:
                    raise SqlError.refused(f"table function {name.rstrip(',')} is not allowed here")
            for name in _TREE_TABLE.findall(tree):
                parts = name.rstrip(",").split(".", 1)
                if len(parts) != 2 or not _allowed(parts[0], parts[1], database):
                    raise SqlError.refused(
                        f"table {name.rstrip(',')} is not yours: query the tables of {database} "
                        "(SHOW TABLES)"
                    )
        return Checked(sql=normalized, fmt=fmt, kind=kind)

    @staticmethod
    def _qualified(parts: list[str], database: str, databases: frozenset[str]) -> None:
        if len(parts) == 2 and parts[0] in databases and not _allowed(parts[0], parts[1], database):
            raise SqlError.refused(
                f"{parts[0]}.{parts[1]} is outside your database {database}: query its tables "
                "(SHOW TABLES)"
            )

    def _names_in_text(self, text: str, database: str, databases: frozenset[str]) -> None:
        for first, second in _QUALIFIED.findall(text):
            self._qualified([_unquote(first), _unquote(second)], database, databases)


def _allowed(db: str, table: str, database: str) -> bool:
    return db == database or (db == "system" and table.split(".")[0] in SYSTEM_TABLES)
