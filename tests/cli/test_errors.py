"""Error responses become exceptions whose message a person can act on."""

from __future__ import annotations

import httpx
import pytest

from trainq.errors import Conflict, FieldError, HTTPError, InvalidRequest, NotFound, Unauthorized, error_for


def response(status: int, body: object | None = None, text: str = "") -> httpx.Response:
    if body is None:
        return httpx.Response(status, text=text)
    return httpx.Response(status, json=body)


def test_field_errors_drop_where_the_field_was_sent() -> None:
    assert str(FieldError(loc=("body", "hyperparameters", "epochs"), msg="too small")) == (
        "hyperparameters.epochs: too small"
    )
    assert str(FieldError(loc=("query", "status", 0), msg="bad")) == "status.0: bad"
    assert str(FieldError(loc=("body",), msg="not JSON")) == "request: not JSON"


def test_a_422_lists_every_field_error() -> None:
    error = error_for(
        response(422, {"detail": [{"loc": ["body", "name"], "msg": "too long", "type": "x"}, {"msg": "odd"}]})
    )
    assert isinstance(error, InvalidRequest)
    assert [str(field) for field in error.errors] == ["name: too long", "request: odd"]
    assert str(error) == "the server rejected the request: name: too long; request: odd"


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (401, Unauthorized, "no key: set TRAINQ_API_KEY"),
        (404, NotFound, "no key"),
        (409, Conflict, "no key"),
        (500, HTTPError, "no key (HTTP 500)"),
    ],
)
def test_each_status_has_its_exception(status: int, kind: type[HTTPError], message: str) -> None:
    error = error_for(response(status, {"detail": "no key"}))
    assert type(error) is kind
    assert str(error).startswith(message)
    assert error.status_code == status


def test_a_body_that_is_not_json_still_gives_a_message() -> None:
    assert str(error_for(response(502, text="Bad gateway from the proxy"))) == (
        "Bad gateway from the proxy (HTTP 502)"
    )
    assert str(error_for(response(503))) == "Service Unavailable (HTTP 503)"
