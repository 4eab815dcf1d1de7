"""Serves a catalogue adapter's fixture folder (tests/fixtures/sources/<name>/) on loopback
with pytest-httpserver: each path of its routes.json answers with its file, for any method
and query string; a path that wants a cookie answers 403 without it."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures" / "sources"


def adapter_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "routes.json").exists())


def expected(name: str) -> list[dict[str, str | None]]:
    return json.loads((FIXTURES / name / "expected.json").read_text(encoding="utf-8"))


def serve_fixture(server: HTTPServer, name: str) -> None:
    folder = FIXTURES / name
    routes = json.loads((folder / "routes.json").read_text(encoding="utf-8"))
    for path, route in routes.items():
        server.expect_request(path).respond_with_handler(_handler(folder, route))


def _handler(folder: Path, route: dict[str, str]):  # type: ignore[no-untyped-def]
    body = (folder / route["file"]).read_bytes()

    def respond(request: Request) -> Response:
        wanted = route.get("needs_cookie")
        if wanted and wanted.split("=", 1)[1] != request.cookies.get(wanted.split("=", 1)[0]):
            return Response(b"forbidden", status=403)
        response = Response(body, content_type=route["type"])
        if cookie := route.get("cookie"):
            response.headers["Set-Cookie"] = f"{cookie}; Path=/"
        return response

    return respond


def adapter_toml(name: str, base_url: str, **extra: str) -> str:
    lines = ["[[feeds]]", f'adapter = "{name}"', f'base_url = "{base_url}"']
    lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"
