"""The HTTP listener fixtures of tests/http, for the status page's access and stream tests."""

from tests.http.conftest import http, start_http

__all__ = ["http", "start_http"]
