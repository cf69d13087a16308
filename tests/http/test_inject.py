"""POST /api/inject/v1: generation, templating, the builder, and every error status."""

from __future__ import annotations

import base64
import email
import email.policy
import gzip
import json
from typing import Any

import pytest

from kumocore import Rejection, hookimpl
from kumocore.mail.message import Message
from tests.http.conftest import HttpEnv, StartHttp

GIF = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def request(content: Any, *recipients: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "envelope_sender": "noreply@sender.example",
        "recipients": list(recipients) or [{"email": "user@example.com"}],
        "content": content,
        **extra,
    }


def parsed(message: Message) -> email.message.EmailMessage:
    parsed_message = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed_message, email.message.EmailMessage)
    return parsed_message


async def test_string_content_is_rendered_per_recipient(http: HttpEnv) -> None:
    content = ("From: Me <me@sender.example>\nSubject: Hi {{ name }}\n\n"
               "Dear {{ name }} ({{ email }})\n")
    status, body = await http.inject(request(
        content, {"email": "ann@example.com", "name": "Ann"},
        {"email": "bob@example.com", "name": "Bob"}))
    assert (status, body) == (200, {"success_count": 2, "fail_count": 0,
                                    "failed_recipients": [], "errors": []})
    ann, bob = http.messages
    assert ann.recipient.email == "ann@example.com"
    assert ann.sender.email == "noreply@sender.example"
    assert ann.get_first_named_header_value("Subject") == "Hi Ann"
    assert ann.data.endswith(b"\r\n\r\nDear Ann (ann@example.com)\r\n")
    assert bob.get_first_named_header_value("Subject") == "Hi Bob"
    assert ann.get_first_named_header_value("MIME-Version") == "1.0"
    assert b"\n" not in ann.data.replace(b"\r\n", b"")


async def test_generated_messages_carry_http_reception_meta(http: HttpEnv) -> None:
    await http.inject(request("Subject: x\n\nbody", {"email": "a@example.com",
                                                     "metadata": {"campaign_id": 7}}))
    [message] = http.messages
    meta = message.meta
    assert meta["http_auth"] == "127.0.0.1"
    assert meta["reception_protocol"] == "HTTP"
    assert meta["received_from"] == "127.0.0.1"
    assert meta["received_via"] == f"127.0.0.1:{http.listener.address[1]}"
    assert meta["hostname"] == "mx.kumocore.test"
    assert meta["extra"] == {"campaign_id": 7}
    assert message.get_first_named_header_value("Received") is None
    assert message.data.startswith(b"X-KumoRef: ")
    records = await http.reception.records("Reception")
    assert [r.reception_protocol for r in records] == ["HTTP"]


async def test_substitutions_precedence(http: HttpEnv) -> None:
    await http.inject(request(
        "Subject: {{ greeting }} {{ name }} {{ who }}\n\nx",
        {"email": "a@example.com", "name": "Ann", "substitutions": {"who": "you"}},
        {"email": "b@example.com", "name": "Bob", "substitutions": {"name": "Robert"}},
        substitutions={"greeting": "Hello", "who": "all", "name": "nobody"}))
    subjects = [m.get_first_named_header_value("Subject") for m in http.messages]
    assert subjects == ["Hello Ann you", "Hello Robert all"]


async def test_static_dialect_leaves_braces_alone(http: HttpEnv) -> None:
    await http.inject(request("Subject: {{ name }}\n\nx", template_dialect="Static"))
    assert http.messages[0].get_first_named_header_value("Subject") == "{{ name }}"


async def test_builder_makes_mixed_related_alternative(http: HttpEnv) -> None:
    status, body = await http.inject(request({
        "from": {"email": "news@sender.example", "name": "News Desk"},
        "reply_to": {"email": "help@sender.example"},
        "subject": "Hello {{ name }} 👋",
        "headers": {"X-Campaign": "fall-{{ year }}"},
        "text_body": "Plain {{ name }}",
        "html_body": "<p>HTML {{ name }}</p><img src=\"cid:logo\">",
        "attachments": [
            {"data": GIF, "base64": True, "content_type": "image/gif", "content_id": "logo"},
            {"data": "a,b\n1,2\n", "content_type": "text/csv", "file_name": "data.csv"},
        ],
    }, {"email": "ann@example.com", "name": "Ann <& Co>"}, substitutions={"year": 2025}))
    assert status == 200 and body["success_count"] == 1
    message = parsed(http.messages[0])
    assert message["Subject"] == "Hello Ann <& Co> 👋"
    assert message["From"] == "News Desk <news@sender.example>"
    assert message["Reply-To"] == "help@sender.example"
    assert message["X-Campaign"] == "fall-2025"
    assert message["To"].addresses[0].display_name == "Ann <& Co>"
    assert message["MIME-Version"] == "1.0" and message["Date"]
    assert message.get_content_type() == "multipart/mixed"
    related, csv = message.iter_parts()
    assert related.get_content_type() == "multipart/related"
    alternative, image = related.iter_parts()
    text, html = alternative.iter_parts()
    assert text.get_content() == "Plain Ann <& Co>\r\n"
    # HTML bodies auto-escape substitutions; plain text does not.
    assert html.get_content() == '<p>HTML Ann &lt;&amp; Co&gt;</p><img src="cid:logo">\r\n'
    assert image["Content-ID"] == "<logo>"
    assert image.get_content() == base64.b64decode(GIF)
    assert csv.get_filename() == "data.csv"
    assert csv.get_content().replace("\r\n", "\n") == "a,b\n1,2\n"


async def test_builder_with_only_text_is_a_single_part(http: HttpEnv) -> None:
    await http.inject(request({"text_body": "just text", "subject": "s"}))
    message = parsed(http.messages[0])
    assert message.get_content_type() == "text/plain"
    assert message["To"] == "user@example.com"


async def test_builder_amp_part_sits_between_text_and_html(http: HttpEnv) -> None:
    await http.inject(request({"text_body": "t", "amp_html_body": "<html amp4email>a</html>",
                               "html_body": "<b>h</b>"}))
    message = parsed(http.messages[0])
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain", "text/x-amp-html", "text/html"]


async def test_builder_keeps_a_given_to_header(http: HttpEnv) -> None:
    await http.inject(request({"text_body": "x", "headers": {"To": "list@example.com"}}))
    assert parsed(http.messages[0])["To"] == "list@example.com"


@pytest.mark.parametrize(("body", "fragment"), [
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
      "content": "x", "bogus": 1}, "unknown field 'bogus'"),
    ({"envelope_sender": "a@b.example", "recipients": {"email": "c@d.example"},
      "content": "x"}, "recipients: expected an array"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": 5}], "content": "x"},
     "recipients[0].email: expected a string"),
    ({"envelope_sender": "not an address", "recipients": [{"email": "c@d.example"}],
      "content": "x"}, "envelope_sender"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@"}], "content": "x"},
     "recipients[0].email"),
    ({"envelope_sender": "a@b.example", "recipients": [], "content": "x"},
     "at least one recipient"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}]},
     "missing field 'content'"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
      "content": {"text_body": "x", "headers": {"X-A": "1\r\nBcc: victim@example.com"}}},
     "must not contain CR, LF or other control"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
      "content": {"text_body": "x", "subject": "hi\nBcc: victim@example.com"}},
     "content.subject: must not contain CR, LF"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example",
      "name": "Eve\r\nBcc: x@y.example"}], "content": "x"}, "recipients[0].name"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
      "content": {"text_body": "x", "headers": {"Bad Name": "v"}}}, "not a valid header name"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
      "content": {"text_body": "x", "attachments": [
          {"data": "***", "base64": True, "content_type": "image/gif"}]}}, "invalid base64"),
    ({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}],
      "content": "x", "template_dialect": "Mustache"}, "template_dialect"),
])
async def test_malformed_requests_get_400_with_a_json_error(
    http: HttpEnv, body: dict[str, Any], fragment: str,
) -> None:
    status, payload = await http.inject(body)
    assert status == 400
    assert fragment in payload["error"]
    assert http.messages == []


async def test_body_that_is_not_json_gets_400(http: HttpEnv) -> None:
    status, payload, _ = await http.request(
        "POST", "/api/inject/v1", data=b"{nope", headers={"Content-Type": "application/json"})
    assert status == 400 and payload["error"].startswith("request body is not valid JSON")


@pytest.mark.parametrize(("content", "extra", "fragment"), [
    ("Subject: {{ name \n\nx", {}, "syntax error"),
    ({"subject": "only a subject"}, {}, "at least one of text_body and/or html_body"),
    ({"text_body": "{% for %}"}, {}, "syntax error"),
    ("x", {"template_dialect": "Handlebars"}, "Handlebars"),
])
async def test_template_and_builder_errors_get_422(
    http: HttpEnv, content: Any, extra: dict[str, Any], fragment: str,
) -> None:
    status, payload = await http.inject(request(content, **extra))
    assert status == 422
    assert fragment in payload["error"]


async def test_body_over_the_limit_gets_413(start_http: StartHttp) -> None:
    env = await start_http(request_body_limit="1 KiB")
    status, text = await env.inject(request("Subject: x\n\n" + "y" * 2000))
    assert (status, text) == (413, "Failed to buffer the request body: length limit exceeded")


class Reject:
    @hookimpl
    def kumo_http_message_generated(self, message: Message, auth_info: dict[str, Any]) -> None:
        if message.recipient.user == "blocked":
            raise Rejection(550, "5.7.1 no thanks")
        message.set_meta("tenant", "t1")


async def test_policy_rejection_counts_the_recipient_as_failed(start_http: StartHttp) -> None:
    env = await start_http(Reject())
    status, body = await env.inject(request(
        "Subject: x\n\ny", {"email": "ok@example.com"}, {"email": "blocked@example.com"}))
    assert status == 200
    assert body == {"success_count": 1, "fail_count": 1,
                    "failed_recipients": ["blocked@example.com"],
                    "errors": ["blocked@example.com: 550 5.7.1 no thanks"]}
    [message] = env.messages
    assert message.meta["tenant"] == "t1"


class BrokenQueueConfig:
    @hookimpl
    def kumo_get_queue_config(self, domain: str) -> None:
        if domain == "broken.example":
            raise KeyError("no such tenant")


async def test_intake_errors_count_the_recipient_as_failed(start_http: StartHttp) -> None:
    env = await start_http(BrokenQueueConfig())
    status, body = await env.inject(request(
        "Subject: x\n\ny", {"email": "a@fine.example"}, {"email": "b@broken.example"}))
    assert status == 200
    assert (body["success_count"], body["fail_count"]) == (1, 1)
    assert body["failed_recipients"] == ["b@broken.example"]
    assert body["errors"][0].startswith("b@broken.example: ")
    assert "no such tenant" in body["errors"][0]


async def test_substitution_cannot_inject_a_header_line(http: HttpEnv) -> None:
    status, body = await http.inject(request(
        {"text_body": "x", "subject": "Hi {{ name }}"},
        {"email": "a@example.com", "substitutions": {"name": "x\r\nBcc: victim@example.com"}},
        {"email": "b@example.com", "name": "Bob"}))
    assert status == 200
    assert body["failed_recipients"] == ["a@example.com"]
    assert "contains CR or LF" in body["errors"][0]
    assert [m.recipient.email for m in http.messages] == ["b@example.com"]


async def test_render_error_fails_only_that_recipient(http: HttpEnv) -> None:
    status, body = await http.inject(request(
        "Subject: {{ item.name }}\n\nx",
        {"email": "a@example.com", "substitutions": {"item": {"name": "ok"}}},
        {"email": "b@example.com"}))
    assert status == 200
    assert (body["success_count"], body["failed_recipients"]) == (1, ["b@example.com"])


async def test_requested_received_header_is_added(http: HttpEnv) -> None:
    await http.inject(request("Subject: x\n\ny", trace_headers={
        "received_header": True, "supplemental_header": False}))
    message = http.messages[0]
    received = message.get_first_named_header_value("Received") or ""
    assert received.startswith("from 127.0.0.1 by mx.kumocore.test with HTTP id ")
    assert message.get_first_named_header_value("X-KumoRef") is None


async def test_gzip_compressed_request_body_is_accepted(http: HttpEnv) -> None:
    raw = gzip.compress(json.dumps(request("Subject: zipped\n\nx")).encode())
    status, body, _ = await http.request(
        "POST", "/api/inject/v1", data=raw,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert status == 200 and body["success_count"] == 1
    assert http.messages[0].get_first_named_header_value("Subject") == "zipped"
