"""``kumocore validate`` asks every handler what the server will ask it (not only ``init``).

Each case runs the real ``kumocore`` script on a Lua policy with one mistake inside a
handler — the kind that ``init`` alone never runs into.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

KUMOCORE = str(Path(sys.executable).with_name("kumocore"))

INIT = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.define_spool { name = 'data', path = '{spool}/data', kind = 'LocalDisk' }
  kumo.start_esmtp_listener { listen = '127.0.0.1:0' }
  kumo.define_egress_source { name = 'ip-1', source_address = '127.0.10.1' }
  kumo.define_egress_pool { name = 'pool-1', entries = { { name = 'ip-1' } } }
end)
"""


def _validate(tmp_path: Path, handlers: str, *args: str,
              spool: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    policy = tmp_path / "policy.lua"
    policy.write_text(INIT.replace("{spool}", spool or str(tmp_path / "spool")) + handlers)
    return subprocess.run([KUMOCORE, "validate", "--policy", str(policy), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_misspelt_queue_option_is_an_error_with_file_line_and_a_suggestion(
    tmp_path: Path,
) -> None:
    result = _validate(tmp_path, """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { max_agee = '1 hour' }
end)
""")
    assert result.returncode == 1
    where = "get_queue_config(domain='example.com', tenant=None)"
    assert f"error: {where}: {tmp_path}/policy.lua:10:" in result.stderr
    assert "unknown key 'max_agee'" in result.stderr and "did you mean 'max_age'?" in result.stderr


def test_a_bad_duration_in_a_queue_config_is_an_error(tmp_path: Path) -> None:
    result = _validate(tmp_path, """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { retry_interval = '1 mniute' }
end)
""")
    assert result.returncode == 1
    assert "retry_interval" in result.stderr and "error: get_queue_config" in result.stderr


def test_a_misspelt_egress_path_option_is_an_error_for_each_source(tmp_path: Path) -> None:
    result = _validate(tmp_path, """
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path { connection_limt = 3 }
end)
""")
    assert result.returncode == 1
    assert "error: get_egress_path_config(domain='example.com', source='ip-1')" in result.stderr
    assert "did you mean 'connection_limit'?" in result.stderr


def test_a_queue_naming_an_undefined_pool_is_an_error(tmp_path: Path) -> None:
    result = _validate(tmp_path, """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { egress_pool = 'pool-typo' }
end)
""")
    assert result.returncode == 1
    assert "error: get_egress_pool('pool-typo'): the pool is not defined" in result.stderr


def test_a_handler_failing_for_one_tenant_is_a_warning_naming_the_input(tmp_path: Path) -> None:
    result = _validate(tmp_path, """
local TENANTS = { acme = { max_age = '1 day' } }
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { max_age = TENANTS[tenant].max_age }
end)
""", "--tenant", "acme", "--domain", "gmail.com")
    assert result.returncode == 0, result.stderr
    assert "warning: get_queue_config(domain='gmail.com', tenant=None)" in result.stderr
    assert "tenant='acme'" not in result.stderr  # that tenant is fine
    assert "1 warning(s)" in result.stdout


def test_a_spool_directory_that_cannot_be_created_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = _validate(tmp_path, "", spool=str(blocker))
    assert result.returncode == 1
    assert f"error: spool 'data' at {blocker}/data: {blocker} exists and is not a directory" \
        in result.stderr


def test_a_correct_policy_validates_with_no_findings(tmp_path: Path) -> None:
    result = _validate(tmp_path, """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { egress_pool = 'pool-1', max_age = '1 day' }
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path { connection_limit = 3 }
end)
""")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning") == 0 and result.stderr.count("error") == 0
    assert "OK:" in result.stdout


def test_the_sample_message_has_the_listener_metadata_handlers_stamp_results_with(
    tmp_path: Path,
) -> None:
    # KumoMTA's documented add_authentication_results example reads the 'hostname' meta,
    # which every listener sets: validate's sample message must have it too.
    result = _validate(tmp_path, """
kumo.on('smtp_server_message_received', function(msg)
  msg:add_authentication_results(msg:get_meta 'hostname', {
    { method = 'spf', result = 'pass', props = {} } })
  assert(msg:get_meta 'received_via', 'no received_via')
end)
""")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning") == 0, result.stderr


# A lookup answer of the wrong type: the server refuses it for every message, so validate
# reports it as an error naming the event, the answer, what was expected and the handler.


def _refused(result: subprocess.CompletedProcess[str], where: str, expected: str,
             got: str) -> bool:  # fmt: skip
    return (f"error: {where}: " in result.stderr
            and f"must return kumo.{expected}{{...}} (or nil), got {got}" in result.stderr)


#: A lookup handler answering with something its event cannot take: the event, the handler's
#: arguments, what it returns, where validate asks, the constructor that belongs, the answer.
WRONG_ANSWERS = [
    ("get_queue_config", "domain, tenant, campaign, routing_domain", "'pool-1'",
     "get_queue_config(domain='example.com', tenant=None)", "make_queue_config",
     "str: 'pool-1'"),
    ("get_queue_config", "domain, tenant, campaign, routing_domain", "{ 'pool-1' }",
     "get_queue_config(domain='example.com', tenant=None)", "make_queue_config",
     "list: ['pool-1']"),
    ("get_egress_path_config", "domain, source, site", "5",
     "get_egress_path_config(domain='example.com', source='ip-1')", "make_egress_path",
     "int: 5"),
    ("get_egress_source", "name", "name", "get_egress_source('ip-1')", "make_egress_source",
     "str: 'ip-1'"),
    ("get_egress_pool", "name", "name", "get_egress_pool('pool-1')", "make_egress_pool",
     "str: 'pool-1'"),
    ("get_listener_domain", "domain, listener, conn_meta", "true",
     "get_listener_domain('example.com')", "make_listener_domain", "bool: True"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("event", "params", "answer", "question", "constructor", "got"), WRONG_ANSWERS,
    ids=[f"{event}-returns-{got.split(':')[0]}" for event, *_, got in WRONG_ANSWERS],
)
def test_validate_fails_naming_the_handler_when_a_lookup_answers_with_the_wrong_type(
    tmp_path: Path, event: str, params: str, answer: str, question: str, constructor: str,
    got: str,
) -> None:
    result = _validate(tmp_path, f"""
kumo.on('{event}', function({params})
  return {answer}
end)
""")
    assert result.returncode == 1, result.stderr
    where = f"{question}: {tmp_path}/policy.lua:10"
    assert _refused(result, where, constructor, got), result.stderr
    # The wrong answer is the finding; no second line calls the source "not defined".
    assert "which is not defined" not in result.stderr, result.stderr


def test_validate_names_each_handler_that_may_have_given_the_wrong_answer(
    tmp_path: Path,
) -> None:
    result = _validate(tmp_path, """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  -- no return: the next handler is asked (as in KumoMTA, `return nil` would end the call)
end)
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return 42
end)
""")
    assert result.returncode == 1, result.stderr
    policy = tmp_path / "policy.lua"
    where = (f"get_queue_config(domain='example.com', tenant=None): "
             f"{policy}:10 or {policy}:13")  # fmt: skip
    assert _refused(result, where, "make_queue_config", "int: 42"), result.stderr


def test_validate_fails_when_a_python_get_queue_config_returns_a_dict(tmp_path: Path) -> None:
    policy = tmp_path / "policy.py"
    policy.write_text(f"""\
from kumocore import hookimpl


@hookimpl
def kumo_init(kumo):
    kumo.define_spool(name="data", path="{tmp_path}/spool/data", kind="LocalDisk")


@hookimpl
def kumo_get_queue_config(domain, tenant, campaign, routing_domain):
    return {{"max_age": "1 day"}}
""")
    result = subprocess.run([KUMOCORE, "validate", "--policy", str(policy)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1, result.stderr
    where = f"get_queue_config(domain='example.com', tenant=None): {policy}:9"
    assert _refused(result, where, "make_queue_config", "dict: {'max_age': '1 day'}"), \
        result.stderr


def test_a_plain_table_of_valid_options_still_validates(tmp_path: Path) -> None:
    # As in KumoMTA, a Lua table is passed through the matching kumo.make_* function.
    result = _validate(tmp_path, """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return { egress_pool = 'pool-1', max_age = '1 day' }
end)
kumo.on('get_listener_domain', function(domain, listener, conn_meta)
  return { relay_to = true }
end)
""")
    assert result.returncode == 0, result.stderr
    assert "OK:" in result.stdout and "error" not in result.stderr


def test_a_handler_that_raises_is_still_a_warning_not_a_wrong_answer(tmp_path: Path) -> None:
    result = _validate(tmp_path, """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  error('no queue for ' .. domain)
end)
""")
    assert result.returncode == 0, result.stderr
    assert f"warning: get_queue_config(domain='example.com', tenant=None): " \
        f"{tmp_path}/policy.lua:11: no queue for example.com" in result.stderr
    assert "must return" not in result.stderr


def test_a_handler_reaching_a_kumomta_function_kumocore_lacks_is_an_error(
    tmp_path: Path,
) -> None:
    result = _validate(tmp_path, """
kumo.on('smtp_server_message_received', function(msg)
  kumo.file_type.from_bytes(msg)
end)
""")
    assert result.returncode == 1, result.stderr
    assert (f"error: smtp_server_message_received(sample message): {tmp_path}/policy.lua:"
            in result.stderr)  # fmt: skip
    assert "KumoMTA's 'kumo.file_type' is not supported by kumocore yet" in result.stderr


def test_a_handler_calling_a_message_method_that_does_not_exist_is_an_error(
    tmp_path: Path,
) -> None:
    result = _validate(tmp_path, """
kumo.on('smtp_server_message_received', function(msg)
  msg:add_authentication_result(msg:get_meta 'hostname', {})
end)
""")
    assert result.returncode == 1, result.stderr
    assert "msg:add_authentication_result is not a method of Message; did you mean " \
        "msg:add_authentication_results?" in result.stderr
