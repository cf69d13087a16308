"""``require 'sqlite'`` (KumoMTA's mod-sqlite) against real database files in tmp_path:
the reference example, result shapes and types, parameters, errors, busy timeout, closing,
and queries that run off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.ticker import LoopTicker

from .support import Recorder, load

#: KumoMTA's docs/reference/sqlite/open.md example, verbatim.
DOCS_EXAMPLE = """\
local sqlite = require 'sqlite'
local db = sqlite.open ':memory:'

-- For the sake of this example, populate with some simple data
db:execute 'CREATE TABLE people (name, age)'

-- You can use prepared statements with positional arguments like this:
db:execute('INSERT INTO people (name, age) values (?, ?)', 'john', 42)

-- and with named arguments like this:
db:execute(
  'INSERT INTO people (name, age) values (:name, :age)',
  { name = 'fred', age = 32 }
)

-- Lets print out just the ages from the database; when the query
-- returns only a single column, the returned value will be an
-- array style lua table consisting of just the values.  In this case,
-- it is equivalent to `{32, 42}`
print 'query ages'
local ages = db:execute 'select age from people order by age'
for k, v in ipairs(ages) do
  print(k, v)
end

-- When multiple columns are returned, they are presented as
-- an array style table of lua object style tables will be returned.
-- In this case it is equivalent to:
-- `{ {name="john", age=42 }, {name="fred", age=32}}`
print 'query all'
local ages = db:execute 'select * from people order by age'
for k, v in ipairs(ages) do
  print('row', k)
  for name, value in pairs(v) do
    print(name, value)
  end
end

-- When no rows are returned by the query, the return value is
-- the number of rows affected by the query. In this case, because
-- 2 records are being deleted, this will print 2
print('deleted rows:', db:execute 'delete from people')
"""


async def run_lua(tmp_path: Path, body: str, value: Any = None) -> list[Any]:
    """Run ``body`` as a policy's top level (``sqlite``, ``kumo``, ``mark`` in scope)."""
    recorder = Recorder()
    recorder.value = value
    await load(
        tmp_path,
        "local kumo = require 'kumo'\nlocal sqlite = require 'sqlite'\n"
        "local mark = kumo.test.mark\n" + body,
        recorder=recorder,
    )
    return recorder.marks


def people_db(tmp_path: Path) -> Path:
    path = tmp_path / "people.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE people (name TEXT, age INTEGER)")
        conn.executemany("INSERT INTO people VALUES (?, ?)", [("john", 42), ("fred", 32)])
    conn.close()
    return path


async def test_the_reference_example_prints_what_its_comments_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await load(tmp_path, DOCS_EXAMPLE)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["query ages", "1\t32", "2\t42"]
    assert lines[3] == "query all"
    # pairs() order within a row is Lua's: compare each row as a set of lines.
    assert lines[4] == "row\t1" and set(lines[5:7]) == {"name\tfred", "age\t32"}
    assert lines[7] == "row\t2" and set(lines[8:10]) == {"name\tjohn", "age\t42"}
    assert lines[10:] == ["deleted rows:\t2"]


async def test_values_keep_their_sqlite_types_and_null_is_nil(tmp_path: Path) -> None:
    path = tmp_path / "types.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (i, r, s, b, n)")
        conn.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?, NULL)",
            (9007199254740993, 1.5, "héllo", b"\x00\xffraw"),
        )
    conn.close()
    marks = await run_lua(
        tmp_path,
        """
        local db = sqlite.open(kumo.test.value())
        local row = db:execute('select i, r, s, b, n from t')[1]
        mark({ math.type(row.i), row.i == 9007199254740993, math.type(row.r), row.r,
               row.s, #row.b, row.b:byte(2), row.n == nil })
        local keys = {}
        for k in pairs(row) do keys[#keys + 1] = k end
        table.sort(keys)
        mark(keys)
        -- one column: NULL leaves a hole, as KumoMTA's array of values does
        local one = db:execute('select n from t union all select 7')
        mark({ one[1] == nil, one[2] })
        mark(db:execute('select i + 1 from t'))
    """,
        str(path),
    )
    assert marks[0] == ["integer", True, "float", 1.5, "héllo", 5, 0xFF, True]
    assert marks[1] == ["b", "i", "r", "s"]
    assert marks[2] == [True, 7]
    assert marks[3] == [9007199254740994]


async def test_positional_and_named_parameters(tmp_path: Path) -> None:
    marks = await run_lua(
        tmp_path,
        """
        local db = sqlite.open(kumo.test.value())
        mark(db:execute('select name from people where age > ? and age < ?', 30, 40))
        mark(db:execute('select name from people where age = ?', { 42 }))
        mark(db:execute('select name from people where name = :n', { n = 'fred' }))
        mark(db:execute('select :a + :b as total, :a as a', { a = 1, b = 2.5 }))
        mark(db:execute('select ? is null', nil))
        mark(db:execute('select :given, :absent is null as absent', { given = 'x' }))
        mark(db:execute('insert into people values (?, ?)', 'ann', 7))
        mark(db:execute('update people set age = age + 1 where age > ?', 1))
    """,
        str(people_db(tmp_path)),
    )
    # A name the table does not give is NULL, as SQLite leaves what KumoMTA does not bind.
    assert marks == [["fred"], ["john"], ["fred"], [{"total": 3.5, "a": 1}], [1],
                     [{":given": "x", "absent": 1}], 1, 3]  # fmt: skip


async def test_a_statement_without_rows_answers_the_rows_it_changed(tmp_path: Path) -> None:
    marks = await run_lua(
        tmp_path,
        """
        local db = sqlite.open(kumo.test.value())
        mark(db:execute('delete from people where age > 40'))
        mark(db:execute('delete from people where age > 1000'))
        mark(db:execute('select name from people where age > 1000'))
        mark(db:execute('create index ages on people (age)'))
    """,
        str(people_db(tmp_path)),
    )
    # A SELECT without rows is an empty table; DDL answers SQLite's changes() (that of
    # the last INSERT/UPDATE/DELETE), as KumoMTA's change_count does.
    assert marks == [1, 0, {}, 0]


async def test_changes_are_committed_without_a_transaction(tmp_path: Path) -> None:
    path = people_db(tmp_path)
    await run_lua(
        tmp_path,
        """
        local db = sqlite.open(kumo.test.value())
        db:execute('insert into people values (?, ?)', 'zed', 99)
    """,
        str(path),
    )
    # Another connection sees the row: autocommit, as KumoMTA's sqlite crate.
    with sqlite3.connect(path) as conn:
        assert conn.execute("select age from people where name = 'zed'").fetchall() == [(99,)]
    conn.close()


async def test_errors_name_the_sql_problem(tmp_path: Path) -> None:
    marks = await run_lua(
        tmp_path,
        """
        local db = sqlite.open(kumo.test.value())
        local function try(...)
          local ok, err = pcall(db.execute, db, ...)
          mark(ok and 'ok' or tostring(err))
        end
        try('selec name from people')
        try('select name from nowhere')
        try('insert into people values (?, ?)', 'only-one')
        try('select ?', true)
        try('select ?', { nested = { 1 } })
        try('select 1; select 2')
    """,
        str(people_db(tmp_path)),
    )
    assert marks[0] == 'SqliteConnection:execute: near "selec": syntax error (code 1)'
    assert marks[1] == "SqliteConnection:execute: no such table: nowhere (code 1)"
    assert marks[2].startswith(
        "SqliteConnection:execute: bind parameters ['only-one'] in "
        "query `insert into people values (?, ?)': Incorrect number"
    )
    assert (
        marks[3]
        == marks[4]
        == (
            "SqliteConnection:execute: only numbers, strings and nil "
            "can be passed as parameter values"
        )
    )
    assert "one statement at a time" in marks[5]


async def test_open_errors_and_argument_checks(tmp_path: Path) -> None:
    marks = await run_lua(
        tmp_path,
        """
        local function try(...)
          local ok, err = pcall(sqlite.open, ...)
          mark(ok and 'ok' or tostring(err))
        end
        try(kumo.test.value() .. '/missing-dir/x.db')
        try(kumo.test.value() .. '/x.db', -1)
        try(kumo.test.value() .. '/x.db', 'soon')
        try(42)
    """,
        str(tmp_path),
    )
    assert marks[0].endswith("missing-dir/x.db: unable to open database file (code 14)")
    assert "BUSY_TIMEOUT must be a whole number of milliseconds, got -1" in marks[1]
    assert "got 'soon'" in marks[2]
    assert "PATH must be a string, got number" in marks[3]


async def test_a_closed_handle_refuses_queries(tmp_path: Path) -> None:
    marks = await run_lua(
        tmp_path,
        """
        local db = sqlite.open(kumo.test.value())
        mark(db:execute('select count(*) from people'))
        db:close()
        db:close()  -- a second close is harmless, as in KumoMTA
        local ok, err = pcall(db.execute, db, 'select 1')
        mark({ ok, tostring(err) })
    """,
        str(people_db(tmp_path)),
    )
    assert marks == [[2], [False, "SqliteConnection:execute: connection was closed"]]


async def test_the_module_also_answers_the_colon_call_of_the_keysource_docs(
    tmp_path: Path,
) -> None:
    # KumoMTA's keysource.md writes `sqlite:open '/path'`; kumocore accepts that form.
    marks = await run_lua(
        tmp_path,
        """
        local db = sqlite:open(kumo.test.value())
        mark(db:execute('select name from people where age = ?', 42))
    """,
        str(people_db(tmp_path)),
    )
    assert marks == [["john"]]


async def test_busy_timeout_bounds_the_wait_for_a_locked_database(tmp_path: Path) -> None:
    path = people_db(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        started = time.monotonic()
        marks = await run_lua(
            tmp_path,
            """
            local db = sqlite.open(kumo.test.value(), 200)
            local ok, err = pcall(db.execute, db, "insert into people values ('x', 1)")
            mark({ ok, tostring(err) })
        """,
            str(path),
        )
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert marks == [[False, "SqliteConnection:execute: database is locked (code 5)"]]
    assert 0.15 < waited < 2.0


SLOW_COUNT = """
    with recursive n(i) as (select 1 union all select i + 1 from n where i < ?)
    select count(*) from n
"""


async def test_a_slow_query_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    recorder = Recorder()
    _, policy = await load(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local sqlite = require 'sqlite'
        kumo.on('slow', function(path, n)
          local db = sqlite.open(path)
          return db:execute([[{SLOW_COUNT}]], n)[1]
        end)
    """,
        recorder=recorder,
    )
    async with LoopTicker() as ticker:
        await asyncio.sleep(0.01)  # the ticker's first wake-up: it measures from there
        started = time.monotonic()
        count = await policy.call_custom_event("slow", str(tmp_path / "x.db"), 3_000_000)
        took = time.monotonic() - started
    assert count == 3_000_000
    assert took > 0.3, "the query must be slow enough to show a stall"
    assert len(ticker.gaps) > 100, "the ticker must have run during the query"
    assert ticker.longest < 0.1, (took, ticker.longest)


async def test_a_cancelled_query_is_interrupted_and_frees_its_handle(tmp_path: Path) -> None:
    recorder = Recorder()
    _, policy = await load(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local sqlite = require 'sqlite'
        local db = sqlite.open(':memory:')
        kumo.on('count', function(n) return db:execute([[{SLOW_COUNT}]], n)[1] end)
    """,
        recorder=recorder,
    )
    endless = asyncio.create_task(policy.call_custom_event("count", 10**12))
    await asyncio.sleep(0.2)
    endless.cancel()
    with pytest.raises(asyncio.CancelledError):
        await endless
    # The handle's next query runs at once: the endless one was interrupted, not left
    # holding the handle (and a pool thread) for hours.
    started = time.monotonic()
    assert await policy.call_custom_event("count", 10) == 10
    assert time.monotonic() - started < 1.0


async def test_python_policies_reach_the_same_functions(tmp_path: Path) -> None:
    from .support import make_runtime

    runtime = make_runtime()
    db = runtime.kumo.sqlite.open(str(people_db(tmp_path)))
    assert await db.execute("select name from people order by age") == ["fred", "john"]
    assert await db.execute("select * from people where name = :n", {"n": "john"}) == [
        {"name": "john", "age": 42}
    ]
    db.close()


async def test_close_during_a_query_lets_it_finish_and_refuses_the_next(tmp_path: Path) -> None:
    _, policy = await load(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local sqlite = require 'sqlite'
        local db = sqlite.open(':memory:')
        kumo.on('count', function(n) return db:execute([[{SLOW_COUNT}]], n)[1] end)
        kumo.on('close', function() db:close() end)
        """,
    )
    running = asyncio.create_task(policy.call_custom_event("count", 1_000_000))
    await asyncio.sleep(0.05)
    await policy.call_custom_event("close")
    assert await running == 1_000_000
    with pytest.raises(Exception, match="connection was closed"):
        await policy.call_custom_event("count", 1)
