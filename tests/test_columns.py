"""One definition of an article's columns: the pydantic model, the Arrow schema derived from it,
and the DDL after every migration agree, name for name, type for type, in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from pydantic import ValidationError

from newsflow.schemas.models import Article, article_id_for
from newsflow.tasks.storage.articles import (
    ARTICLE_SCHEMA,
    JSON_COLUMNS,
    arrow_type,
    articles_table,
)
from newsflow.tasks.storage.store import migrate

# DuckDB's type of each Arrow type the schema uses; JSON columns travel as text.
DUCKDB_TYPE = {
    pa.string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
    pa.list_(pa.string()): "VARCHAR[]",
    pa.date32(): "DATE",
}


@pytest.fixture(scope="module")
def ddl_columns() -> list[tuple[str, str, bool]]:
    """(name, type, nullable) of `articles` in a database with every migration applied."""
    con = duckdb.connect(":memory:")
    migrate(con)
    rows = con.execute("DESCRIBE articles").fetchall()
    return [(r[0], r[1], r[2] == "YES") for r in rows]


def test_model_arrow_and_ddl_name_the_same_columns_in_order(
    ddl_columns: list[tuple[str, str, bool]],
) -> None:
    stored = [name for name, f in Article.model_fields.items() if not f.exclude]
    assert stored == ARTICLE_SCHEMA.names == [c[0] for c in ddl_columns]


def test_arrow_types_match_the_ddl(ddl_columns: list[tuple[str, str, bool]]) -> None:
    for (name, ddl_type, _), field in zip(ddl_columns, ARTICLE_SCHEMA, strict=True):
        expected = "JSON" if name in JSON_COLUMNS else DUCKDB_TYPE[field.type]
        assert ddl_type == expected, name


def test_not_null_columns_are_required_in_the_model(
    ddl_columns: list[tuple[str, str, bool]],
) -> None:
    for name, _, nullable in ddl_columns:
        if not nullable:
            field = Article.model_fields[name]
            assert type(None) not in getattr(field.annotation, "__args__", ()), name


def article(**changes: Any) -> Article:
    url = "https://news.example.org/a/1"
    values: dict[str, Any] = {
        "article_id": article_id_for(url),
        "url": url,
        "canonical_url": url,
        "title": "Title",
    }
    return Article(**values | changes)


def test_a_field_the_arrow_schema_lacks_is_an_error() -> None:
    class Wider(Article):
        mood: str = "sunny"

    with pytest.raises(TypeError, match=r"Wider fields without a column: \['mood'\]"):
        articles_table([article(), Wider(**article().model_dump())])


def test_a_type_without_an_arrow_type_is_an_error() -> None:
    with pytest.raises(TypeError, match="no Arrow type"):
        arrow_type(set[str])
    assert arrow_type(datetime | None) == pa.timestamp("us", tz="UTC")
    assert arrow_type(dict[str, Any]) == pa.string()


def test_articles_table_keeps_every_value() -> None:
    a = article(categories=["金融"], extra={"来源": "新华社"}, comments=True)
    row = articles_table([a]).to_pylist()[0]
    assert row.pop("extra") == '{"来源": "新华社"}'
    assert row == a.model_dump(exclude={"extra"})


@pytest.mark.parametrize(
    "article_id", ["../../etc/x", "0123456789ABCDEF", "0123456789abcde", "/tmp/x", ""]
)
def test_an_article_id_of_another_shape_is_refused(article_id: str) -> None:
    with pytest.raises(ValidationError, match="article_id"):
        article(article_id=article_id)
