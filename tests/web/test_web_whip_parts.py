"""The sans-I/O parts of WHIP and WHEP: reading a request's head, telling a token from a passcode, and
writing a response with its CORS headers."""

from __future__ import annotations

import base64
import json
from http import HTTPStatus

import pytest
from conf_web.whip import Response, is_whip_path, parse_head, token_name


def test_a_request_head_is_read_into_method_path_query_and_headers() -> None:
    request = parse_head(
        b"POST /whip/k7m-q2xw-9fd?name=Ada%20L HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/sdp; charset=utf-8\r\nAuthorization: Bearer  4hx9qe \r\n\r\n"
    )
    assert request.method == "POST"
    assert request.path == ["whip", "k7m-q2xw-9fd"]
    assert request.query == {"name": ["Ada L"]}
    assert request.content_type == "application/sdp"
    assert request.bearer == "4hx9qe"
    assert parse_head(b"DELETE /whep/m/ada%2Fx/video/ID HTTP/1.1\r\n\r\n").path == [
        "whep", "m", "ada/x", "video", "ID",
    ]  # fmt: skip
    assert parse_head(b"POST /whip/m HTTP/1.1\r\nAuthorization: Basic eDp5\r\n\r\n").bearer is None


@pytest.mark.parametrize(
    "head",
    [
        b"POST /whip/m\r\n\r\n",  # no version
        b"POST /whip/m FTP/1.0\r\n\r\n",
        b"POST /whip/m HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"POST /whip/m HTTP/1.1\r\nA: 1\r\na: 2\r\n\r\n",  # the same header twice
        b"POST /whip/m HTTP/1.1\r\nBad Name: 1\r\n\r\n",
    ],
)
def test_a_malformed_head_is_refused(head: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(head)


def test_a_bearer_that_looks_like_a_jwt_names_its_holder_anything_else_is_a_passcode() -> None:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    token = f"{part({'alg': 'HS256'})}.{part({'sub': 'grace', 'meeting': 'm'})}.c2ln"
    assert token_name(token) == "grace"
    assert token_name("4hx9qe") is None
    assert token_name("a.b.c") is None
    assert token_name(f"{part({'alg': 'HS256'})}.!!!.c2ln") is None
    assert token_name(f"{part({'alg': 'HS256'})}.{part(['sub'])}.c2ln") is None
    assert token_name(f"{part({'alg': 'HS256'})}.{part({'sub': 7})}.c2ln") is None


def test_a_response_carries_cors_its_length_and_closes() -> None:
    wire = Response(HTTPStatus.CREATED, b"v=0\r\n", {"Location": "/whip/m/ID"}).encode()
    head, body = wire.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 201 Created"
    assert {
        "Access-Control-Allow-Origin: *",
        "Location: /whip/m/ID",
        "Content-Length: 5",
        "Connection: close",
    } <= set(lines)
    assert "Access-Control-Expose-Headers: Location, ETag" in lines
    assert body == b"v=0\r\n"
    assert is_whip_path("/whip/m") and is_whip_path("/whep/m/a/video") and not is_whip_path("/ws")
