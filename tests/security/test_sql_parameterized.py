"""Every SQL statement is parameterized: no value is ever formatted into SQL text.

An AST scan of durable_core/, django_durable/ and fastapi_durable/ finds every f-string,
``str.format`` and ``%`` formatting whose text looks like SQL. An interpolated expression is
allowed only if it is

* a placeholder list, ``", ".join(["%s"] * n)`` (the store builds ``IN (%s, %s, …)`` lists:
  the values still travel as parameters), or
* listed in ALLOWED below: fixed column lists, table-name constants and fragments chosen from
  string literals in code, each with the reason it can carry no outside data.

A new interpolation fails this test until it is parameterized or reviewed and listed here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("durable_core", "django_durable", "fastapi_durable")
SQL = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE|DROP|ALTER|WHERE|VALUES|RETURNING|"
    r"ORDER BY|LIMIT|SET search_path|LISTEN|NOTIFY)\b"
)

# (file, interpolated expression as ast.unparse writes it): why it is safe.
ALLOWED: dict[tuple[str, str], str] = {
    ("durable_core/store/base.py", "WORKFLOW_COLUMNS"): "fixed column list constant",
    ("durable_core/store/base.py", "STEP_COLUMNS"): "fixed column list constant",
    ("durable_core/store/base.py", "QUEUE_SETTINGS_COLUMNS"): "fixed column list constant",
    (
        "durable_core/store/base.py",
        "', '.join(['(%s, %s, %s, %s, %s, %s, %s, %s)'] * len(rows))",
    ): "rows of placeholders (a multi-row VALUES list)",
    ("durable_core/store/base.py", "SCHEDULE_COLUMNS"): "fixed column list constant",
    ("durable_core/store/base.py", "attempts"): "one of three literal SQL expressions",
    ("durable_core/store/base.py", "token_clause"): "literal clause with a %s placeholder, or ''",
    ("durable_core/store/base.py", "where"): "joined literal clauses with %s placeholders",
    ("durable_core/store/base.py", "order"): "'ASC'/'DESC' or a literal column list",
    ("durable_core/store/base.py", "column"): "literal column names in code",
    ("durable_core/store/base.py", "table"): "table-name literals in code",
    ("durable_core/store/base.py", "marks"): "a placeholder list",
    ("durable_core/store/base.py", "self.ownership_check"): "class constant SQL",
    ("durable_core/store/base.py", "self.lock_suffix"): "class constant (' FOR UPDATE' or '')",
    ("durable_core/store/base.py", "self.skip_locked_suffix"): "class constant",
    ("durable_core/store/base.py", "' AND '.join(clauses)"): "literal clauses with placeholders",
    ("django_durable/schema.py", "table"): "table names from the core's migrations",
    ("django_durable/schema.py", "function"): "function names from the core's migrations",
    ("durable_core/store/base.py", "OWNED"): "module constant: the ownership clause, placeholders",
    ("durable_core/store/postgres.py", "OWNED"): "the store's ownership clause constant",
    ("durable_core/store/base.py", "self._DEADLINE_DUE"): "class constant clause, placeholders",
    ("durable_core/store/base.py", "probe"): "literal SELECT over a workflows_by() source",
    ("durable_core/store/base.py", "source"): "'durable_workflows' or workflows_by(literal)",
    ("durable_core/store/base.py", "terminal"): "the TERMINAL status literals, quoted in code",
    ("durable_core/store/base.py", "filters"): "literal clauses over placeholder lists",
    ("durable_core/store/base.py", "', '.join([marks] * len(part))"): "placeholder rows",
    **{
        ("durable_core/store/base.py", f"self.workflows_by('{index}')"): "an index-name literal"
        for index in (
            "durable_workflows_deadline_idx",
            "durable_workflows_pending_idx",
            "durable_workflows_delayed_idx",
            "durable_workflows_ready_idx",
            "durable_workflows_priority_ready_idx",
            "durable_workflows_running_idx",
            "durable_workflows_queue_started_idx",
            "durable_workflows_status_created_idx",
        )
    },
    ("durable_core/store/base.py", "CLAIM_SET"): "module constant: the claim's SET clause",
    ("durable_core/store/base.py", "self.claimed_has_steps"): "class constant ('' or EXISTS)",
    ("durable_core/store/postgres.py", "SQLStore._FINISH"): "class constant UPDATE, placeholders",
    ("durable_core/store/postgres.py", "SQLStore._INSERT_STEP"): "class constant INSERT",
    ("durable_core/store/postgres.py", "filters"): "literal clauses over placeholder lists",
    (
        "durable_core/store/postgres.py",
        "CLAIM_SET.replace('%s || workflow_id', '%s || w.workflow_id')",
    ): "the claim's SET constant, a column qualified",
    ("durable_core/store/postgres.py", "_W_COLUMNS"): "fixed column list constant",
    ("durable_core/store/postgres.py", "WORKFLOW_COLUMNS"): "fixed column list constant",
    ("durable_core/store/postgres.py", "_COLUMN_TYPES.get(c, 'text')"): "type-name literals",
    (
        "durable_core/store/postgres.py",
        "self.claimed_has_steps.replace('durable_workflows.', 'w.')",
    ): "class constant EXISTS clause, a table alias substituted",
    ("durable_core/store/postgres.py", "_NULLS"): "a fixed list of NULL literals",
    ("durable_core/store/partitions.py", "table"): "workflows_by(an index-name literal)",
    ("durable_core/store/partitions.py", "bound"): "'> %s', \">= ''\" or '> pkeys.k' in code",
    ("durable_core/store/partitions.py", "first"): "probe() of a literal bound",
    ("durable_core/store/partitions.py", "probe('> pkeys.k')"): "probe() of a literal bound",
    ("durable_core/store/partitions.py", "marks"): "a placeholder list",
    ("durable_core/store/partitions.py", "filters"): "literal clauses over placeholder lists",
    ("durable_core/store/partitions.py", "eligible"): "a literal clause with placeholders",
    ("durable_core/store/partitions.py", "store.skip_locked_suffix"): "class constant",
    **{
        ("durable_core/store/partitions.py", f"store.workflows_by('{index}')"): "index literal"
        for index in (
            "durable_workflows_partition_running_idx",
            "durable_workflows_partition_started_idx",
        )
    },
    ("durable_core/store/debounce.py", "columns"): "base.WORKFLOW_COLUMNS, passed in",
    ("durable_core/store/debounce.py", "placeholders"): "a placeholder list",
    ("durable_core/store/debounce.py", "least"): "'LEAST' or 'MIN' by dialect",
    ("durable_core/store/debounce.py", "due"): "a literal expression with a placeholder",
    (
        "durable_core/store/schema.py",
        "', '.join((f\"'{s}'\" for s in ('SUCCESS', 'ERROR', 'CANCELLED', "
        "'MAX_RECOVERY_ATTEMPTS_EXCEEDED')))",
    ): "a migration's status literals",
}


def placeholder_list(node: ast.expr) -> bool:
    """``", ".join(["%s"] * n)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and isinstance(node.func.value, ast.Constant)
        and node.func.value.value.strip() == ","
        and len(node.args) == 1
        and isinstance(node.args[0], ast.BinOp)
        and isinstance(node.args[0].op, ast.Mult)
        and isinstance(node.args[0].left, ast.List)
        and [getattr(e, "value", None) for e in node.args[0].left.elts] == ["%s"]
    )


def interpolations(tree: ast.AST):
    """(line, sql text, interpolated expressions) for every SQL-looking formatted string."""
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            exprs = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
            yield node.lineno, text, exprs
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Mod)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
        ):
            yield node.lineno, node.left.value, [node.right]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)
        ):
            yield (
                node.lineno,
                node.func.value.value,
                [*node.args, *(k.value for k in node.keywords)],
            )


def violations() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel:
                continue
            for line, text, exprs in interpolations(ast.parse(path.read_text(), rel)):
                if not SQL.search(text):
                    continue
                for expr in exprs:
                    if placeholder_list(expr):
                        continue
                    if (rel, ast.unparse(expr)) in ALLOWED:
                        continue
                    found.append(f"{rel}:{line}: {ast.unparse(expr)!r} in {text[:60]!r}")
    return found


def test_no_value_is_formatted_into_sql():
    assert violations() == []


def test_the_scan_catches_string_built_sql():
    bad = ast.parse(
        "def f(conn, wid):\n    conn.execute(f\"SELECT * FROM durable_workflows WHERE workflow_id = '{wid}'\")\n"
        '    conn.execute("DELETE FROM t WHERE id = %s" % wid)\n'
        '    conn.execute("UPDATE t SET a = {}".format(wid))\n'
    )
    assert [ast.unparse(e[0]) for _, _, e in interpolations(bad)] == ["wid", "wid", "wid"]
    ok = ast.parse("sql = f\"SELECT a FROM t WHERE id IN ({', '.join(['%s'] * len(ids))})\"")
    assert all(placeholder_list(e) for _, _, exprs in interpolations(ok) for e in exprs)
