"""A server URL that cannot be used is one line saying what is wrong with it, before any request is made."""

from __future__ import annotations

import pytest

from tests.support.cli import failed_with, trainq
from trainq import Client, TrainqError

BAD_URLS = {
    "http://[::1": "is not a valid URL: Invalid IPv6 URL",
    "http://local host:8000": "contains a space or a control character",
    "localhost:8000": "has no scheme; add http:// (http://localhost:8000)",
    "ftp://example.com": "must start with http:// or https://, not ftp://",
    "http://": "has no host",
    "http://127.0.0.1:99999": "is not a valid URL: Port out of range 0-65535",
    "http://127.0.0.1:port": "is not a valid URL: Port could not be cast to integer value as 'port'",
}


@pytest.mark.parametrize(("url", "problem"), BAD_URLS.items())
def test_the_client_says_what_is_wrong_with_the_url(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TrainqError) as given:
        Client(url)
    assert str(given.value) == f"the server URL {url!r} {problem}"
    monkeypatch.setenv("TRAINQ_URL", url)
    with pytest.raises(TrainqError) as from_environment:
        Client()
    assert str(from_environment.value) == f"TRAINQ_URL {url!r} {problem}"


@pytest.mark.parametrize(("url", "problem"), BAD_URLS.items())
def test_the_command_reports_a_bad_url_in_one_line(url: str, problem: str) -> None:
    failed_with(trainq(url, "list"), f"TRAINQ_URL {url!r} {problem}")
    failed_with(trainq(None, "--url", url, "list"), f"the server URL {url!r} {problem}")


def test_a_usable_url_is_kept_without_its_trailing_slash() -> None:
    with Client("HTTPS://[::1]:8443/api/") as client:
        assert client.url == "HTTPS://[::1]:8443/api"
