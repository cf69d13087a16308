"""SMTP AUTH against an sqlite credentials table, as KumoMTA's guides publish it: through a
real node and :mod:`smtplib` (STARTTLS, then AUTH PLAIN), and the ``kumo.memoize``d form."""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common.smtp_client import insecure_client_context
from kumocore.testing import Node

from .support import load

#: docs/userguide/policy/inbound_auth.md, verbatim but for the database path. kumocore has
#: no global `kumo`, so the policy requires it first.
INBOUND_AUTH = """\
local kumo = require 'kumo'
local sqlite = require 'sqlite'

-- Consult a hypothetical sqlite database that has an auth table
-- with user and pass fields
function sqlite_auth_check(user, password)
  local db = sqlite.open '/path/to/auth.db'
  local result = db:execute(
    'select user from auth where user=? and pass=?',
    user,
    password
  )
  -- if we return the username, it is because the password matched
  return result[1] == user
end

kumo.on('smtp_server_auth_plain', function(authz, authc, password)
  return sqlite_auth_check(authc, password)
end)
"""

#: docs/reference/kumo/memoize.md's second example, verbatim but for the path.
MEMOIZED = """\
local kumo = require 'kumo'
local sqlite = require 'sqlite'

function sqlite_auth_check(user, password)
  local db = sqlite.open '/tmp/auth.db'
  local result = db:execute(
    'select user from auth where user=? and pass=?',
    user,
    password
  )
  -- if we return the username, it is because the password matched
  return result[1] == user
end

-- This creates a new function called `cached_sqlite_auth_check`
-- that remembers the results for a given set of parameters for up
-- to 5 minutes or up to 100 different sets of parameters
cached_sqlite_auth_check = kumo.memoize(sqlite_auth_check, {
  name = 'sqlite_auth',
  ttl = '5 minutes',
  capacity = 100,
})

kumo.on('smtp_server_auth_plain', function(authz, authc, password)
  return cached_sqlite_auth_check(authc, password)
end)
"""


def auth_db(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE auth (user TEXT, pass TEXT)")
        conn.execute("INSERT INTO auth VALUES ('alice', 's3cret')")
    conn.close()
    return path


def login(port: int, user: str, password: str) -> tuple[int, bytes]:
    """STARTTLS, then AUTH PLAIN; the server's answer to AUTH."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=insecure_client_context())
        client.ehlo()
        try:
            return client.login(user, password)
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code, exc.smtp_error


async def test_smtp_auth_checks_credentials_in_sqlite_through_a_real_node(
    tmp_path: Path, make_node: Callable[..., Awaitable[Node]]
) -> None:
    db = auth_db(tmp_path / "auth.db")
    node = await make_node(INBOUND_AUTH.replace("/path/to/auth.db", str(db)))
    accepted = await asyncio.to_thread(login, node.smtp_port, "alice", "s3cret")
    refused = await asyncio.to_thread(login, node.smtp_port, "alice", "wrong")
    unknown = await asyncio.to_thread(login, node.smtp_port, "mallory", "s3cret")
    assert accepted[0] == 235
    assert refused[0] == unknown[0] == 535
    # A user added to the table can log in at once: the database is read per attempt.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO auth VALUES ('bob', 'hunter2')")
    conn.close()
    assert (await asyncio.to_thread(login, node.smtp_port, "bob", "hunter2"))[0] == 235


async def test_the_memoized_check_answers_from_its_cache(tmp_path: Path) -> None:
    db = auth_db(tmp_path / "auth.db")
    runtime, _ = await load(tmp_path, MEMOIZED.replace("/tmp/auth.db", str(db)))
    assert await runtime.hooks.smtp_server_auth_plain("", "alice", "s3cret", {})
    assert not await runtime.hooks.smtp_server_auth_plain("", "alice", "nope", {})
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM auth")
    conn.close()
    # Cached for 5 minutes, as the example says: the deleted user still passes.
    assert await runtime.hooks.smtp_server_auth_plain("", "alice", "s3cret", {})
