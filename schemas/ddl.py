"""The DuckDB schema, as numbered migrations.

A database file records the highest migration applied in `schema_version`; opening an older
file applies the missing ones in order, in place. Never edit a released migration: add one.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "core tables",
        """
        CREATE TABLE articles (
            article_id     VARCHAR PRIMARY KEY,      -- hash of canonical_url
            url            VARCHAR NOT NULL,
            canonical_url  VARCHAR NOT NULL,
            guid           VARCHAR,
            feed_url       VARCHAR,
            source         VARCHAR,
            title          VARCHAR NOT NULL,
            author         VARCHAR,
            published_at   TIMESTAMPTZ,
            updated_at     TIMESTAMPTZ,
            categories     VARCHAR[],
            tags           VARCHAR[],
            image_url      VARCHAR,
            thumbnail_url  VARCHAR,
            comments       BOOLEAN,
            language       VARCHAR,
            summary        VARCHAR,
            body_text      VARCHAR,
            content_hash   VARCHAR,
            story_id       VARCHAR,
            duplicate_of   VARCHAR,
            extra          JSON,
            first_seen_at  TIMESTAMPTZ NOT NULL,
            last_seen_at   TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE article_feeds (
            article_id     VARCHAR NOT NULL,
            feed_url       VARCHAR NOT NULL,
            guid           VARCHAR,
            first_seen_at  TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (article_id, feed_url)
        );
        CREATE TABLE feeds (
            url                   VARCHAR PRIMARY KEY,
            name                  VARCHAR,
            source                VARCHAR,
            title                 VARCHAR,
            etag                  VARCHAR,
            last_modified         VARCHAR,
            status                VARCHAR NOT NULL DEFAULT 'active',
            consecutive_failures  INTEGER NOT NULL DEFAULT 0,
            last_checked_at       TIMESTAMPTZ,
            last_success_at       TIMESTAMPTZ,
            next_check_at         TIMESTAMPTZ,
            last_error            VARCHAR,
            last_error_kind       VARCHAR,
            last_status_code      INTEGER,
            poll_interval_s       DOUBLE,
            last_new_items_at     TIMESTAMPTZ,
            articles_total        BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE runs (
            run_id              VARCHAR PRIMARY KEY,
            flow                VARCHAR NOT NULL,
            started_at          TIMESTAMPTZ NOT NULL,
            finished_at         TIMESTAMPTZ,
            status              VARCHAR NOT NULL,   -- running, completed, crashed
            pid                 INTEGER,
            hostname            VARCHAR,
            feeds_checked       INTEGER DEFAULT 0,
            feeds_failed        INTEGER DEFAULT 0,
            feeds_not_modified  INTEGER DEFAULT 0,
            entries_seen        INTEGER DEFAULT 0,
            pages_downloaded    INTEGER DEFAULT 0,
            articles_new        INTEGER DEFAULT 0,
            articles_updated    INTEGER DEFAULT 0,
            duplicates          INTEGER DEFAULT 0,
            errors              INTEGER DEFAULT 0,
            parameters          JSON
        );
        CREATE TABLE ingest_errors (
            run_id       VARCHAR,
            occurred_at  TIMESTAMPTZ NOT NULL,
            stage        VARCHAR NOT NULL,
            url          VARCHAR,
            kind         VARCHAR NOT NULL,
            message      VARCHAR NOT NULL,
            feed_url     VARCHAR
        );
        """,
    ),
    (
        2,
        "dedup layers and stories",
        """
        -- Duplicates found by each layer (the existing `duplicates` is their sum).
        ALTER TABLE runs ADD COLUMN dup_url INTEGER DEFAULT 0;
        ALTER TABLE runs ADD COLUMN dup_guid INTEGER DEFAULT 0;
        ALTER TABLE runs ADD COLUMN dup_title INTEGER DEFAULT 0;
        ALTER TABLE runs ADD COLUMN dup_body INTEGER DEFAULT 0;
        ALTER TABLE runs ADD COLUMN dup_near INTEGER DEFAULT 0;
        -- Keys of the title and body layers and the MinHash signature (tasks/dedup.py): one
        -- row per article, written in the transaction that inserts it (no index to maintain).
        CREATE TABLE article_keys (
            article_id  VARCHAR NOT NULL,
            title_key   VARCHAR,                  -- hash of (source, normalized title)
            body_key    VARCHAR,                  -- hash of the story text; NULL when too short
            dated_at    TIMESTAMPTZ NOT NULL,     -- published_at, else first_seen_at
            minhash     BLOB                      -- MinHash signature, uint32 values
        );
        -- Near-duplicate layer: one row per LSH band of an article's MinHash signature, so a
        -- new article finds its candidates without reading old bodies (tasks/fingerprint.py).
        CREATE TABLE article_bands (
            bucket      BIGINT NOT NULL,          -- hash of (band number, the band's values)
            article_id  VARCHAR NOT NULL
        );
        -- Articles stored before stories existed are each their own story.
        UPDATE articles SET story_id = article_id WHERE story_id IS NULL;
        CREATE VIEW stories AS
        SELECT
            story_id,
            min(published_at) AS first_published_at,
            max(published_at) AS last_published_at,
            count(*) AS articles,
            count(DISTINCT coalesce(source, split_part(canonical_url, '/', 3))) AS sources,
            list(DISTINCT coalesce(source, split_part(canonical_url, '/', 3)))
                AS source_names,
            any_value(title) FILTER (WHERE article_id = story_id) AS title
        FROM articles
        GROUP BY story_id;
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""
