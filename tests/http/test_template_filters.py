"""The ``normalize_smtp_response`` filter in inject templates, as KumoMTA's template engine
offers it."""

from __future__ import annotations

import pytest

from kumocore.logs import response_normalize
from tests.http.conftest import HttpEnv


@pytest.mark.skipif(not response_normalize.WORDS_FILE.exists(),
                    reason=f"{response_normalize.WORDS_FILE} missing (Debian 'wamerican')")
async def test_inject_template_can_normalize_a_response(http: HttpEnv) -> None:
    status, payload = await http.inject({
        "envelope_sender": "a@sender.example", "recipients": [{"email": "b@example.com"}],
        "substitutions": {"r": "250 OK ids=8a5475ccbbc611eda12250ebf67f93bd from 10.0.0.1"},
        "content": {"text_body": "last: {{ r | normalize_smtp_response }}"},
    })
    assert (status, payload["success_count"]) == (200, 1), payload
    body = http.messages[0].data.decode()
    assert "last: 250 OK ids={uuid} from {ipaddr}" in body, body
