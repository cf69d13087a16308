"""kumo.string.normalize_smtp_response, from Lua, from Python, and as a template filter.

The expected texts are KumoMTA's own examples for this function."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore import PolicyError
from kumocore.logs import response_normalize
from kumocore.logs.response_normalize import normalize_smtp_response

from .support import Recorder, load, make_runtime

needs_words = pytest.mark.skipif(
    not response_normalize.WORDS_FILE.exists(),
    reason=f"{response_normalize.WORDS_FILE} missing (Debian 'wamerican'; scripts/setup.sh)")

GMAIL = (
    "550 5.1.1 The email account that you tried to reach does not exist. Please try "
    "double-checking the recipient's email address for typos or unnecessary spaces. For more "
    "information, go to  https://support.google.com/mail/?p=NoSuchUser "
    "41be03b00d2f7-b93bf44f0c0si6882731a12.803 - gsmtp")
GMAIL_NORMALIZED = (
    "550 5.1.1 The email account that you tried to reach does not exist. Please try "
    "double-checking the recipient's email address for typos or unnecessary spaces. For more "
    "information, go to https://support.google.com/mail/?p=NoSuchUser {hash} - gsmtp")

CASES = [
    ("retry again at 2025-11-06T17:11:34.261306612Z", "retry again at {timestamp}"),
    ("a uuid 10aa5da5-3f3b-4176-beb9-32875830f082", "a uuid {uuid}"),
    ("OK ids=8a5475ccbbc611eda12250ebf67f93bd", "OK ids={uuid}"),
    ("aGVsbG8uCg==", "{base64}"),
    ("hello aGVsbG8K", "hello {base64}"),
    ("421 4.1.0 10.0.0.1 throttled try later", "421 4.1.0 {ipaddr} throttled try later"),
    ("421 4.1.0 ::1 throttled try later", "421 4.1.0 {ipaddr} throttled try later"),
    ("Accepting connection from 42.69.10.20:25", "Accepting connection from {ipaddr}"),
    ("duration 00:10:34", "duration 00:10:34"),
    ("rejecting mail for some.body@gmail.com", "rejecting mail for {email}"),
    ("550 Mail is rejected by recipients [aGVsbG8uCg== IP: 10.10.10.10]. "
     "https://service.mail.qq.com/detail/0/92.",
     "550 Mail is rejected by recipients {base64} IP: {ipaddr} "
     "https://service.mail.qq.com/detail/0/92."),
    ("the From: header (RFC5322) in this message", "the From: header RFC5322 in this message"),
    ("Context: DispatcherDrop. Next due in 11s 999ms 990us 55ns at "
     "2026-04-05T07:34:04.198063031Z",
     "Context: DispatcherDrop. Next due in {duration} at {timestamp}"),
    ("P1Y2M3DT4H5M6S", "{duration}"),
    ("P1Y2M3DT4H5M6Shello", "{hash}"),
    ("abc11s 999ms", "abc11s {duration}"),
    ("5h 30m", "{duration}"),
    ("2yearhello", "2yearhello"),
    (GMAIL, GMAIL_NORMALIZED),
]


@needs_words
@pytest.mark.parametrize(("text", "expected"), CASES)
def test_normalize_replaces_per_message_parts_as_kumomta_does(text: str, expected: str) -> None:
    assert normalize_smtp_response(text) == expected


@needs_words
def test_dictionary_words_that_are_valid_base64_stay_words() -> None:
    # All are valid base64; the word list (title-cased words too, and KumoMTA's SMTP
    # terms and acronyms) keeps them. An upper-case word not in the list is not kept.
    assert normalize_smtp_response("This Mail rate duration smtp Ehlo DKIM dkim SMTP") == \
        "This Mail rate duration smtp Ehlo DKIM dkim {base64}"


@needs_words
async def test_lua_policy_normalizes_a_response_and_uses_the_template_filter(
        tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        kumo.test.mark(kumo.string.normalize_smtp_response [[{GMAIL}]])
        kumo.test.mark(kumo.string.eval_template('something.txt',
          [[{{{{ response | normalize_smtp_response }}}}]],
          {{ response = '250 OK ids=8a5475ccbbc611eda12250ebf67f93bd' }}, 'Jinja'))
        kumo.test.mark({{ pcall(kumo.string.normalize_smtp_response, {{}}) }})
    """, recorder=recorder)
    assert recorder.marks[:2] == [GMAIL_NORMALIZED, "250 OK ids={uuid}"]
    ok, error = recorder.marks[2]
    assert not ok and "TEXT must be a string" in str(error)


@needs_words
def test_python_policy_gets_the_same_function() -> None:
    kumo = make_runtime().kumo
    assert kumo.string.normalize_smtp_response(GMAIL) == GMAIL_NORMALIZED


async def test_missing_word_list_is_refused_naming_the_file_and_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the dictionary every four-letter word would become {base64}: refuse instead.
    monkeypatch.setattr(response_normalize, "WORDS_FILE", tmp_path / "no-words")
    response_normalize.dictionary.cache_clear()
    try:
        with pytest.raises(PolicyError, match=r"no-words.*wamerican"):
            await load(tmp_path, """\
                local kumo = require 'kumo'
                kumo.string.normalize_smtp_response 'Mail is rejected'
            """)
    finally:
        response_normalize.dictionary.cache_clear()
