"""`newsflow sources` and `newsflow sources check`, and bad definitions at the CLI: one line
naming the feed and the field, before any fetch."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from newsflow.cli import render
from newsflow.cli.main import main
from newsflow.schemas.config import load_feeds_file
from newsflow.schemas.errors import ConfigError
from newsflow.schemas.sources import catalogue
from tests.conftest import cli_env
from tests.source_site import adapter_toml, serve_fixture


def compact(printed: str) -> str:
    """A table's text without its frame and spaces: cells fold at the terminal's width."""
    return "".join(c for c in printed if c.isascii() and not c.isspace() and c not in "|│")


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as a 200-column terminal shows them: no cell cut short."""
    monkeypatch.setattr(render.out, "width", 200)


def test_sources_lists_the_catalogue_never_verified(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources"]) == 0
    printed = compact(capsys.readouterr().out)
    for name in catalogue():
        assert name in printed
    assert "RSSHub" in printed and "never" in printed
    assert "verified" in printed


def test_sources_check_passes_on_sources_that_work_and_fails_on_a_broken_one(
    httpserver: HTTPServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = httpserver.url_for("/").rstrip("/")
    for name in ("cls-depth", "gov-zhengceku"):
        serve_fixture(httpserver, name)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        adapter_toml("cls-depth", base) + adapter_toml("gov-zhengceku", base), encoding="utf-8"
    )
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    code = main(["sources", "check", "--all", "--feeds", str(feeds)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    printed = compact(captured.out)
    assert "cls-depth" in printed and "gov-zhengceku" in printed
    assert "title2/2" in printed and "date2/2" in printed

    # The CAC's list is not served: its check fails, and says so, and the exit code too.
    feeds.write_text(adapter_toml("cac-blockchain-filings", base), encoding="utf-8")
    assert main(["sources", "check", "cac-blockchain-filings", "--feeds", str(feeds)]) == 1
    captured = capsys.readouterr()
    assert "BROKEN" in captured.out and "http_500" in compact(captured.out)
    # The loopback server in this process logs its requests to stderr too.
    ours = [line for line in captured.err.splitlines() if "werkzeug" not in line]
    assert ours == ["broken: cac-blockchain-filings"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            'kind = "html_list"\nname = "x"\nrequest = { url = "https://a.example/" }\n'
            'items = { css = "li[[" }\nfields = { link = "a::attr(href)" }',
            "feed 'x': items.css: bad CSS selector 'li[['",
        ),
        (
            'kind = "json_api"\nname = "y"\nrequest = { url = "https://a.example/" }\n'
            'items = { path = "data" }\nfields = { link = { template = "https://a/{id[}" } }',
            "feed 'y': fields.link: bad JMESPath 'id['",
        ),
        (
            'kind = "json_api"\nname = "z"\nrequest = { url = "https://a.example/", sign = "x" }\n'
            'items = { path = "data" }\nfields = { link = "url" }',
            "feed 'z': request.sign: unknown signer 'x'",
        ),
        ('adapter = "cls-telegraph"\nbase_url = "https://m.example"\nbogus = 1', "bogus"),
        ('adapter = "no-such"', "feed 'no-such': adapter: unknown adapter 'no-such'"),
    ],
)
def test_a_bad_definition_is_one_line_naming_feed_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, message: str
) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f"[[feeds]]\n{entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_feeds_file(feeds)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert main(["run", "--feeds", str(feeds), "--db", str(tmp_path / "x.duckdb")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: feeds file") and message in lines[0]


def test_the_shipped_feeds_file_uses_the_catalogue() -> None:
    shipped = load_feeds_file(Path(__file__).resolve().parents[1] / "feeds.toml")
    adapters = {getattr(f, "adapter", None) for f in shipped.feeds}
    assert set(catalogue()) <= adapters
    assert not any("rsshub.app/cls" in f.url for f in shipped.feeds)
