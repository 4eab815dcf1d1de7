"""The DuckDB schema, as numbered migrations.

A database file records the migrations applied to it in `schema_version`; opening a file
applies the ones it lacks, in order, in place. Never edit a released migration: add one.
Numbers are claimed per issue and can land out of order (3 before 2), so each migration stands
on migration 1 alone and a file that has 3 but not 2 gets 2 later.

Over 450 lines for a reason: the migrations are one ordered list, and views and macros are
defined next to the tables they read.
"""

from __future__ import annotations

# Migration 10's search_matches: migration 11 replaces its phrase part (_PHRASE_TERMS_*).
_MATCHES_10 = """
        CREATE OR REPLACE MACRO search_matches(query) AS TABLE
        WITH parts AS (
            FROM search_query_parts(query)
        ), ids AS (
            SELECT DISTINCT part, neg, hash(unnest(terms)) AS term_id FROM parts
        ), wanted AS (
            SELECT DISTINCT term_id FROM ids WHERE NOT neg
        ), hits AS (
            SELECT term_id, doc_id, tf FROM search_postings
            WHERE term_id IN (SELECT term_id FROM wanted)
        ), df AS (
            SELECT term_id, count(*) AS df FROM hits GROUP BY term_id
        ), stats AS (
            SELECT count(*) AS n, avg(terms) AS avg_terms FROM search_docs
        ), scored AS (
            SELECT h.doc_id,
                   sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * h.tf * 2.2
                       / (h.tf + 1.2 * (0.25 + 0.75 * d.terms / s.avg_terms))) AS score
            FROM hits h JOIN df USING (term_id) JOIN search_docs d USING (doc_id), stats s
            GROUP BY h.doc_id
            HAVING count(*) = (SELECT count(*) FROM wanted)
        ), negative AS (
            SELECT part, term_id, count(*) OVER (PARTITION BY part) AS size
            FROM ids WHERE neg
        ), excluded AS (
            SELECT p.doc_id FROM search_postings p JOIN negative n USING (term_id)
            GROUP BY p.doc_id, n.part HAVING count(*) = any_value(n.size)
        ), phrase_terms AS (
            -- Each term of a phrase with its offset in the phrase (`shift`).
            SELECT part, len(seq) AS size, hash(unnest(seq)) AS term_id,
                   unnest(range(len(seq))) AS shift
            FROM parts WHERE phrase AND NOT neg AND len(seq) > 1
        ), phrase_postings AS (
            SELECT t.part, t.size, t.shift, p.doc_id, p.positions
            FROM search_postings p JOIN phrase_terms t USING (term_id)
            WHERE p.term_id IN (SELECT term_id FROM phrase_terms)
              AND p.doc_id IN (SELECT doc_id FROM scored)
        ), phrase_found AS (
            -- A phrase starts at s in a candidate when each of its terms is at s + offset. Of
            -- two terms: a place of the first, one on, is a place of the second (a join of the
            -- places, cheaper than list functions per article).
            SELECT DISTINCT part, doc_id FROM (
                SELECT part, doc_id, unnest(positions) + 1 AS place
                FROM phrase_postings WHERE size = 2 AND shift = 0
            ) SEMI JOIN (
                SELECT part, doc_id, unnest(positions) AS place
                FROM phrase_postings WHERE size = 2 AND shift = 1
            ) USING (part, doc_id, place)
            UNION ALL
            -- Of more: every term's places, shifted back by its offset, intersect.
            SELECT part, doc_id FROM (
                SELECT part, doc_id, any_value(size) AS size, count(*) AS found,
                       list(list_transform(positions, x -> x - shift)) AS starts
                FROM phrase_postings WHERE size > 2
                GROUP BY part, doc_id
            )
            WHERE found = size AND len(list_reduce(starts, (a, b) -> list_intersect(a, b))) > 0
        ), phrased AS (
            SELECT doc_id FROM phrase_found GROUP BY doc_id
            HAVING count(*) = (SELECT count(DISTINCT part) FROM phrase_terms)
        )
        SELECT d.article_id, s.score FROM scored s JOIN search_docs d USING (doc_id)
        WHERE s.doc_id NOT IN (SELECT doc_id FROM excluded)
          AND (NOT EXISTS (FROM phrase_terms) OR s.doc_id IN (SELECT doc_id FROM phrased));
        """
_PHRASE_TERMS_10 = """
        ), phrase_terms AS (
            -- Each term of a phrase with its offset in the phrase (`shift`).
            SELECT part, len(seq) AS size, hash(unnest(seq)) AS term_id,
                   unnest(range(len(seq))) AS shift
            FROM parts WHERE phrase AND NOT neg AND len(seq) > 1
"""
_PHRASE_TERMS_11 = """
        ), phrase_seq AS (
            -- A phrase of Latin words (all its pairs are) is matched by its pairs, each a
            -- term of the phrase; another by its terms.
            SELECT part, CASE
                WHEN list_bool_and(list_transform(search_pairs(seq), p -> p IS NOT NULL))
                THEN search_pairs(seq) ELSE seq END AS seq
            FROM parts WHERE phrase AND NOT neg AND len(seq) > 1
        ), phrase_terms AS (
            -- Each term of a phrase with its offset in the phrase (`shift`).
            SELECT part, len(seq) AS size, hash(unnest(seq)) AS term_id,
                   unnest(range(len(seq))) AS shift
            FROM phrase_seq
"""
_PHRASE_FOUND_10 = """
            UNION ALL
            -- Of more: every term's places"""
_PHRASE_FOUND_11 = """
            UNION ALL
            -- Of one (a pair of words): a posting of it.
            SELECT DISTINCT part, doc_id FROM phrase_postings WHERE size = 1
            UNION ALL
            -- Of more: every term's places"""


def _replaced(sql: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        if sql.count(old) != 1:
            raise ValueError(f"not once in the macro: {old.strip()[:60]!r}")
        sql = sql.replace(old, new)
    return sql


_MATCHES_11 = _replaced(
    _MATCHES_10,
    (_PHRASE_TERMS_10, _PHRASE_TERMS_11),
    (_PHRASE_FOUND_10, _PHRASE_FOUND_11),
)
# Migration 12: a negative phrase of several terms is matched as a phrase (among the
# candidates) and excludes where found; other negative parts exclude where all their terms are.
_MATCHES_12 = _replaced(
    _MATCHES_11,
    (
        """
            FROM ids WHERE neg
""",
        """
            FROM ids WHERE neg
              AND part NOT IN (SELECT part FROM parts WHERE phrase AND len(seq) > 1)
""",
    ),
    (
        """
            SELECT part, CASE
                WHEN list_bool_and(list_transform(search_pairs(seq), p -> p IS NOT NULL))
                THEN search_pairs(seq) ELSE seq END AS seq
            FROM parts WHERE phrase AND NOT neg AND len(seq) > 1
""",
        """
            SELECT part, neg, CASE
                WHEN list_bool_and(list_transform(search_pairs(seq), p -> p IS NOT NULL))
                THEN search_pairs(seq) ELSE seq END AS seq
            FROM parts WHERE phrase AND len(seq) > 1
""",
    ),
    (
        """
            SELECT part, len(seq) AS size, hash(unnest(seq)) AS term_id,
                   unnest(range(len(seq))) AS shift
            FROM phrase_seq
""",
        """
            SELECT part, neg, len(seq) AS size, hash(unnest(seq)) AS term_id,
                   unnest(range(len(seq))) AS shift
            FROM phrase_seq
""",
    ),
    (
        """
            SELECT doc_id FROM phrase_found GROUP BY doc_id
            HAVING count(*) = (SELECT count(DISTINCT part) FROM phrase_terms)
""",
        """
            SELECT doc_id FROM phrase_found
            WHERE part IN (SELECT part FROM phrase_terms WHERE NOT neg)
            GROUP BY doc_id
            HAVING count(*) = (SELECT count(DISTINCT part) FROM phrase_terms WHERE NOT neg)
""",
    ),
    (
        """
        WHERE s.doc_id NOT IN (SELECT doc_id FROM excluded)
          AND (NOT EXISTS (FROM phrase_terms) OR s.doc_id IN (SELECT doc_id FROM phrased));
""",
        """
        WHERE s.doc_id NOT IN (SELECT doc_id FROM excluded)
          AND s.doc_id NOT IN (
              SELECT doc_id FROM phrase_found
              WHERE part IN (SELECT part FROM phrase_terms WHERE neg))
          AND (NOT EXISTS (FROM phrase_terms WHERE NOT neg)
               OR s.doc_id IN (SELECT doc_id FROM phrased));
""",
    ),
)

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
        -- Keys of the title and body layers and the MinHash signature (tasks/dedup/layers.py): one
        -- row per article, written in the transaction that inserts it (no index to maintain).
        CREATE TABLE article_keys (
            article_id  VARCHAR NOT NULL,
            title_key   VARCHAR,                  -- hash of (source, normalized title)
            body_key    VARCHAR,                  -- hash of the story text's words; NULL when
                                                  -- too short, or for an exact copy
            dated_at    TIMESTAMPTZ NOT NULL,     -- published_at, else first_seen_at
            minhash     BLOB                      -- MinHash signature, uint32 values
        );
        -- Near-duplicate layer: one row per LSH band of an article's MinHash signature, so a
        -- new article finds its candidates without reading old bodies (tasks/dedup/fingerprint.py).
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
    (
        3,
        "coverage analysis: topic, region, document and organization tags, views",
        """
        CREATE TABLE article_topics (
            article_id  VARCHAR NOT NULL,
            topic       VARCHAR NOT NULL,
            terms       VARCHAR[] NOT NULL,     -- the lexicon terms found
            hits        INTEGER NOT NULL,       -- in title and body
            title_hits  INTEGER NOT NULL,
            score       DOUBLE NOT NULL,        -- title_weight * title_hits + body hits
            PRIMARY KEY (article_id, topic)
        );
        CREATE TABLE article_regions (
            article_id  VARCHAR NOT NULL,
            region      VARCHAR NOT NULL,       -- full name: 苏州市, 内蒙古自治区
            province    VARCHAR NOT NULL,       -- the provincial-level division it is in
            level       VARCHAR NOT NULL,       -- province, autonomous_region, municipality,
                                                -- sar, prefecture
            hits        INTEGER NOT NULL,
            PRIMARY KEY (article_id, region)
        );
        CREATE TABLE article_policy_docs (
            article_id  VARCHAR NOT NULL,
            doc_title   VARCHAR NOT NULL,       -- inside 《…》, （…） parts kept
            doc_type    VARCHAR NOT NULL,       -- 方案, 意见, 通知 … , 报刊, other
            hits        INTEGER NOT NULL,
            PRIMARY KEY (article_id, doc_title)
        );
        CREATE TABLE article_orgs (
            article_id  VARCHAR NOT NULL,
            org         VARCHAR NOT NULL,       -- canonical name: 中国人民银行 for 央行
            country     VARCHAR NOT NULL,
            hits        INTEGER NOT NULL,
            PRIMARY KEY (article_id, org)
        );

        -- Every article tagged with at least one topic, with its tags in lists. `day` is the
        -- publication date (first sighting when undated) in Asia/Shanghai.
        CREATE VIEW policy_articles AS
        WITH t AS (
            SELECT article_id, list(topic ORDER BY score DESC, topic) AS topics,
                   sum(score) AS score
            FROM article_topics GROUP BY article_id
        ), r AS (
            SELECT article_id, list(region ORDER BY hits DESC, region) AS regions,
                   list(DISTINCT province ORDER BY province) AS provinces
            FROM article_regions GROUP BY article_id
        ), d AS (
            SELECT article_id, list(doc_title ORDER BY hits DESC, doc_title) AS docs
            FROM article_policy_docs WHERE doc_type <> '报刊' GROUP BY article_id
        ), o AS (
            SELECT article_id, list(org ORDER BY hits DESC, org) AS orgs
            FROM article_orgs GROUP BY article_id
        ), sizes AS (
            SELECT coalesce(story_id, article_id) AS story_id, count(*) AS story_size
            FROM articles GROUP BY ALL
        )
        SELECT a.article_id,
               CAST(timezone('Asia/Shanghai', coalesce(a.published_at, a.first_seen_at))
                    AS DATE) AS day,
               a.published_at, a.source, a.language, a.title, a.url,
               coalesce(a.story_id, a.article_id) AS story_id, a.duplicate_of,
               (a.duplicate_of IS NOT NULL OR sizes.story_size > 1) AS syndicated,
               t.topics, t.score,
               coalesce(r.regions, []::VARCHAR[]) AS regions,
               coalesce(r.provinces, []::VARCHAR[]) AS provinces,
               coalesce(d.docs, []::VARCHAR[]) AS docs,
               coalesce(o.orgs, []::VARCHAR[]) AS orgs
        FROM articles a
        JOIN t USING (article_id)
        JOIN sizes ON sizes.story_id = coalesce(a.story_id, a.article_id)
        LEFT JOIN r USING (article_id)
        LEFT JOIN d USING (article_id)
        LEFT JOIN o USING (article_id);

        -- Articles and stories (near-duplicate clusters; an article is its own story until
        -- dedup assigns one) per day, source and topic.
        CREATE VIEW coverage_daily AS
        SELECT CAST(timezone('Asia/Shanghai', coalesce(a.published_at, a.first_seen_at))
                    AS DATE) AS day,
               a.source, t.topic,
               count(*) AS articles,
               count(DISTINCT coalesce(a.story_id, a.article_id)) AS stories
        FROM article_topics t JOIN articles a USING (article_id)
        GROUP BY ALL;

        -- Per day, topic and region: tagged articles that name the region.
        CREATE VIEW coverage_by_region AS
        SELECT CAST(timezone('Asia/Shanghai', coalesce(a.published_at, a.first_seen_at))
                    AS DATE) AS day,
               t.topic, r.region, r.province, r.level,
               count(*) AS articles,
               count(DISTINCT coalesce(a.story_id, a.article_id)) AS stories,
               sum(r.hits) AS hits
        FROM article_regions r
        JOIN article_topics t USING (article_id)
        JOIN articles a USING (article_id)
        GROUP BY ALL;

        -- Per source, over the whole database: how much of its output is tagged.
        CREATE VIEW coverage_by_source AS
        SELECT a.source,
               count(*) AS articles,
               count(p.article_id) AS policy_articles,
               round(count(p.article_id) / count(*), 3) AS policy_share,
               count(DISTINCT p.story_id) AS policy_stories,
               count(*) FILTER (WHERE p.syndicated) AS syndicated,
               min(p.published_at) AS first_published,
               max(p.published_at) AS last_published
        FROM articles a LEFT JOIN policy_articles p USING (article_id)
        GROUP BY a.source;

        -- Documents named in 《…》, most widely covered first (newspapers left out).
        CREATE VIEW policy_docs_ranked AS
        SELECT rank() OVER (ORDER BY count(*) DESC, count(DISTINCT a.source) DESC) AS rank,
               d.doc_title, d.doc_type,
               min(coalesce(a.published_at, a.first_seen_at)) AS first_mentioned,
               max(coalesce(a.published_at, a.first_seen_at)) AS last_mentioned,
               count(*) AS articles,
               count(DISTINCT coalesce(a.story_id, a.article_id)) AS stories,
               count(DISTINCT a.source) AS sources,
               list(DISTINCT a.source ORDER BY a.source)
                   FILTER (WHERE a.source IS NOT NULL) AS source_list
        FROM article_policy_docs d JOIN articles a USING (article_id)
        WHERE d.doc_type <> '报刊'
        GROUP BY d.doc_title, d.doc_type
        ORDER BY rank, first_mentioned, doc_title;
        """,
    ),
    (
        4,
        "body source",
        """
        -- page, feed or post (newsflow.schemas.models.Article.body_source); NULL on rows
        -- loaded before this migration, which came from pages or feeds.
        ALTER TABLE articles ADD COLUMN body_source VARCHAR;
        """,
    ),
    (
        5,
        "feed claims and polling hints",
        # claimed_by: the run polling the feed right now, so overlapping runs split the due
        # feeds instead of fetching each twice (a claim of a run no longer running is void).
        # poll_hint_s: the feed's own hint (<ttl>, sy:updatePeriod, Cache-Control max-age),
        # kept because a 304 answer carries no feed body to read it from.
        # retry_after_until: what a 429/503 Retry-After asked for; even --force waits for it.
        """
        ALTER TABLE feeds ADD COLUMN claimed_by VARCHAR;
        ALTER TABLE feeds ADD COLUMN poll_hint_s DOUBLE;
        ALTER TABLE feeds ADD COLUMN retry_after_until TIMESTAMPTZ;
        """,
    ),
    (
        6,
        "loaded staged batches",
        """
        -- Staged feed batches (`newsflow run --stage-dir`) merged by `newsflow load`: a row is
        -- written in the transaction that loads the batch, so each loads exactly once.
        CREATE TABLE loaded_batches (
            batch_id     VARCHAR PRIMARY KEY,
            run_id       VARCHAR NOT NULL,       -- the staged run that wrote it
            feed_url     VARCHAR NOT NULL,
            part         VARCHAR NOT NULL,       -- its folder under <stage>/parts/
            loaded_at    TIMESTAMPTZ NOT NULL,
            load_run_id  VARCHAR                 -- the `newsflow load` run (runs.run_id)
        );
        """,
    ),
    (
        7,
        "one error kind for a missing title",
        """
        -- `missing_title` (a post) and `no_title` (a feed item) were one thing under two names;
        -- newsflow.schemas.kinds.Kind.NO_TITLE is the one name now.
        UPDATE ingest_errors SET kind = 'no_title' WHERE kind = 'missing_title';
        UPDATE feeds SET last_error_kind = 'no_title' WHERE last_error_kind = 'missing_title';
        """,
    ),
    (
        8,
        "date precision and provenance",
        """
        -- How much of published_at the source stated (second, minute, day, month, year), where
        -- it came from (feed, jsonld, meta, time, script, visible, url, front_matter), and its
        -- calendar date in the source's zone: a date without a time is stored as that local
        -- midnight, and grouped by published_date, which never slips to the previous day.
        -- origin_source: the outlet the story was taken from (来源), apart from the carrying
        -- site. NULL on rows loaded before this migration (`newsflow backfill --reextract`
        -- fills them).
        ALTER TABLE articles ADD COLUMN published_precision VARCHAR;
        ALTER TABLE articles ADD COLUMN published_source VARCHAR;
        ALTER TABLE articles ADD COLUMN published_date DATE;
        ALTER TABLE articles ADD COLUMN origin_source VARCHAR;

        -- The per-day series count dated articles only, on their calendar date (the Shanghai
        -- day of published_at on rows from before this migration); undated articles were
        -- counted on the day they were first seen, which is not when they were published.
        -- They are left out, and coverage_undated says how many per source.
        CREATE OR REPLACE VIEW coverage_daily AS
        SELECT coalesce(a.published_date,
                        CAST(timezone('Asia/Shanghai', a.published_at) AS DATE)) AS day,
               a.source, t.topic,
               count(*) AS articles,
               count(DISTINCT coalesce(a.story_id, a.article_id)) AS stories
        FROM article_topics t JOIN articles a USING (article_id)
        WHERE a.published_at IS NOT NULL
        GROUP BY ALL;

        CREATE OR REPLACE VIEW coverage_by_region AS
        SELECT coalesce(a.published_date,
                        CAST(timezone('Asia/Shanghai', a.published_at) AS DATE)) AS day,
               t.topic, r.region, r.province, r.level,
               count(*) AS articles,
               count(DISTINCT coalesce(a.story_id, a.article_id)) AS stories,
               sum(r.hits) AS hits
        FROM article_regions r
        JOIN article_topics t USING (article_id)
        JOIN articles a USING (article_id)
        WHERE a.published_at IS NOT NULL
        GROUP BY ALL;

        -- Tagged articles without a publication date, left out of the per-day series.
        CREATE VIEW coverage_undated AS
        SELECT a.source, count(DISTINCT a.article_id) AS articles
        FROM article_topics t JOIN articles a USING (article_id)
        WHERE a.published_at IS NULL
        GROUP BY ALL;
        """,
    ),
    (
        9,
        "full-text search: index tables and the search macros",
        """
        -- The full-text index (tasks/search/index.py writes it inside every article load):
        -- one posting per (term, article), the term as its hash(term), the title's
        -- occurrences weighted 3 to the body's 1; each article's length in terms for BM25.
        CREATE TABLE search_docs (
            doc_id      INTEGER NOT NULL,
            article_id  VARCHAR NOT NULL,
            terms       INTEGER NOT NULL,         -- weighted length: 3 × title + body terms
            signature   UBIGINT NOT NULL          -- hash(title, content_hash) when indexed
        );
        CREATE TABLE search_postings (
            term_id     UBIGINT NOT NULL,         -- hash(term)
            doc_id      INTEGER NOT NULL,
            tf          USMALLINT NOT NULL        -- 3 × title + body occurrences
        );
        -- hash('newsflow') when the postings were written: a DuckDB whose hash() differs would
        -- look every term up under another id, so newsflow rebuilds the index when it does.
        CREATE TABLE search_state (hash_probe UBIGINT NOT NULL);
        INSERT INTO search_state VALUES (hash('newsflow'));

        -- Segmentation of a query by tasks/search/segment.py's rules, so that a plain duckdb
        -- session searches without Python: Chinese as character bigrams, Latin words and
        -- numbers whole, lower-cased, plurals stemmed (Harman's S-stemmer), stopwords dropped.
        CREATE MACRO search_stem(t) AS CASE
            WHEN NOT regexp_full_match(t, '[a-z]{4,}') THEN t
            WHEN suffix(t, 'ies') AND NOT suffix(t, 'eies') AND NOT suffix(t, 'aies')
                THEN substr(t, 1, length(t) - 3) || 'y'
            WHEN suffix(t, 'es') AND NOT suffix(t, 'aes') AND NOT suffix(t, 'ees')
                AND NOT suffix(t, 'oes') THEN substr(t, 1, length(t) - 1)
            WHEN suffix(t, 's') AND NOT suffix(t, 'us') AND NOT suffix(t, 'ss')
                THEN substr(t, 1, length(t) - 1)
            ELSE t END;
        CREATE MACRO search_tokens(text) AS flatten(list_transform(
            regexp_extract_all(lower(coalesce(text, '')),
                               '[㐀-䶿一-鿿豈-﫿]+|[0-9a-zà-ɏ]+(?:[-.][0-9a-zà-ɏ]+)*'),
            lambda tok: CASE
                WHEN regexp_full_match(tok, '[㐀-䶿一-鿿豈-﫿]+') THEN
                    CASE WHEN length(tok) = 1 THEN [tok]
                         ELSE list_transform(range(1, length(tok)),
                                             lambda i: substr(tok, i, 2)) END
                WHEN list_contains(['a', 'an', 'and', 'are', 'as', 'at', 'be', 'by', 'for',
                                    'from', 'in', 'is', 'it', 'its', 'of', 'on', 'or', 'that',
                                    'the', 'this', 'to', 'was', 'were', 'with'], tok)
                    THEN []::VARCHAR[]
                ELSE [search_stem(tok)] END));

        -- A query's parts: words, "quoted phrases", and -exclusions of either; a stray quote
        -- is ignored, and past 1,000 characters the query is cut. Parts without a term (only
        -- stopwords or punctuation) drop out.
        CREATE MACRO search_query_parts(query) AS TABLE
        WITH raw AS (
            SELECT unnest(regexp_extract_all(substr(coalesce(query, ''), 1, 1000),
                                             '-?"[^"]*"|[^\\s"]+')) AS raw
        ), parts AS (
            SELECT row_number() OVER () AS part,
                   starts_with(raw, '-') AS neg,
                   contains(raw, '"') AS phrase,
                   trim(regexp_replace(lower(ltrim(raw, '-')), '["\\s]+', ' ', 'g')) AS text
            FROM raw
        )
        SELECT part, neg, phrase, text, list_distinct(search_tokens(text)) AS terms
        FROM parts WHERE len(search_tokens(text)) > 0;

        -- Every article matching a query, with its BM25 score (k1 = 1.2, b = 0.75): all of
        -- the query's words and phrases, none of its exclusions. Only the query terms'
        -- postings are read; document frequencies are counted from them.
        CREATE MACRO search_matches(query) AS TABLE
        WITH parts AS (
            FROM search_query_parts(query)
        ), ids AS (
            SELECT DISTINCT part, neg, hash(unnest(terms)) AS term_id FROM parts
        ), wanted AS (
            SELECT DISTINCT term_id FROM ids WHERE NOT neg
        ), hits AS (
            SELECT term_id, doc_id, tf FROM search_postings
            WHERE term_id IN (SELECT term_id FROM wanted)
        ), df AS (
            SELECT term_id, count(*) AS df FROM hits GROUP BY term_id
        ), stats AS (
            SELECT count(*) AS n, avg(terms) AS avg_terms FROM search_docs
        ), scored AS (
            SELECT h.doc_id,
                   sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * h.tf * 2.2
                       / (h.tf + 1.2 * (0.25 + 0.75 * d.terms / s.avg_terms))) AS score
            FROM hits h JOIN df USING (term_id) JOIN search_docs d USING (doc_id), stats s
            GROUP BY h.doc_id
            HAVING count(*) = (SELECT count(*) FROM wanted)
        ), negative AS (
            SELECT part, term_id, count(*) OVER (PARTITION BY part) AS size
            FROM ids WHERE neg
        ), excluded AS (
            SELECT p.doc_id FROM search_postings p JOIN negative n USING (term_id)
            GROUP BY p.doc_id, n.part HAVING count(*) = any_value(n.size)
        ), phrases AS (
            -- Text without Latin letters has no case: checked without lower(), which is slow.
            SELECT text, NOT regexp_matches(text, '[a-zà-ɏ]') AS caseless
            FROM parts WHERE phrase AND NOT neg
        ), found AS (
            SELECT d.article_id, s.score FROM scored s JOIN search_docs d USING (doc_id)
            WHERE s.doc_id NOT IN (SELECT doc_id FROM excluded)
        )
        SELECT article_id, score FROM found
        WHERE NOT EXISTS (FROM phrases)
        UNION ALL
        -- Each candidate's text read by its id, so only candidates' bodies are read.
        SELECT f.article_id, f.score FROM found f
        WHERE EXISTS (FROM phrases)
          AND (SELECT bool_and((
                SELECT CASE WHEN caseless
                            THEN contains(a.title, text) OR contains(a.body_text, text)
                            ELSE contains(lower(a.title), text)
                                 OR contains(lower(a.body_text), text) END
                FROM articles a WHERE a.article_id = f.article_id)) FROM phrases);

        -- A keyword in context: `width` characters either side of the first place `needle`
        -- occurs, marked «like this»; the body's start when it does not occur.
        CREATE MACRO search_snippet(body, needle, width := 40) AS (
            WITH spot AS (SELECT CASE WHEN needle IS NULL OR needle = '' THEN 0
                                    ELSE instr(lower(coalesce(body, '')), needle) END AS pos)
            SELECT regexp_replace(CASE WHEN pos = 0 THEN substr(body, 1, 2 * width)
                ELSE (CASE WHEN pos > width + 1 THEN '…' ELSE '' END)
                     || substr(body, greatest(1, pos - width), least(pos - 1, width))
                     || '«' || substr(body, pos, length(needle)) || '»'
                     || substr(body, pos + length(needle), width) END,
                '\\s+', ' ', 'g')
            FROM spot);

        -- Ranked search from plain SQL: SELECT * FROM search_articles('数字人民币 跨境');
        -- the best `max_results` matches, best first.
        CREATE MACRO search_articles(query, max_results := 100) AS TABLE
        WITH m AS (
            SELECT * FROM search_matches(query) ORDER BY score DESC, article_id
            LIMIT max_results
        ), needle AS (
            SELECT text FROM search_query_parts(query) WHERE NOT neg ORDER BY part LIMIT 1
        )
        SELECT m.article_id, m.score, a.title, a.published_at, a.source,
               search_snippet(a.body_text, (SELECT text FROM needle)) AS snippet
        FROM m JOIN articles a USING (article_id)
        ORDER BY m.score DESC, m.article_id;
        """,
    ),
    (
        10,
        "full-text search: term positions, phrases matched from the index",
        """
        -- Each posting keeps its term's places in the article, so that a phrase is matched
        -- from the postings (terms at consecutive places) instead of by reading candidates'
        -- text. The index is emptied: the first read command reindexes (with progress), and
        -- loads index their own articles meanwhile.
        DROP TABLE search_postings;
        CREATE TABLE search_postings (
            term_id     UBIGINT NOT NULL,         -- hash(term)
            doc_id      INTEGER NOT NULL,
            tf          USMALLINT NOT NULL,       -- 3 × title + body occurrences
            positions   INTEGER[] NOT NULL        -- places: the title's from 0, the body's after
        );
        DELETE FROM search_docs;

        -- `seq`: the part's terms in order, repeats kept, for phrases.
        CREATE OR REPLACE MACRO search_query_parts(query) AS TABLE
        WITH raw AS (
            SELECT unnest(regexp_extract_all(substr(coalesce(query, ''), 1, 1000),
                                             '-?"[^"]*"|[^\\s"]+')) AS raw
        ), parts AS (
            SELECT row_number() OVER () AS part,
                   starts_with(raw, '-') AS neg,
                   contains(raw, '"') AS phrase,
                   trim(regexp_replace(lower(ltrim(raw, '-')), '["\\s]+', ' ', 'g')) AS text
            FROM raw
        )
        SELECT part, neg, phrase, text, list_distinct(search_tokens(text)) AS terms,
               search_tokens(text) AS seq
        FROM parts WHERE len(search_tokens(text)) > 0;

        -- As in migration 9, but a phrase of several terms matches where its terms sit at
        -- consecutive places (stopwords, which are not indexed, take no place)."""
        + _MATCHES_10,
    ),
    (
        11,
        "full-text search: adjacent Latin terms post as pairs, for phrases of common words",
        """
        -- Two adjacent Latin terms also post as one pair term, 'central bank', so a phrase of
        -- Latin words is looked up by its pairs instead of joining its words' places (at
        -- 100,000 articles, "central bank" joined 3.9 million places: ~200 ms). Chinese
        -- phrases keep the join: their bigrams are rare. The index is emptied: the first read
        -- command reindexes (with progress).
        DELETE FROM search_postings;
        DELETE FROM search_docs;

        -- Each two adjacent terms of a list as one pair term, 'central bank', where both are
        -- Latin (letters or digits: UTF-8 orders every such term, of characters up to U+024F,
        -- before U+3400, the first ideograph a term can hold), else NULL. The index posts
        -- them (tasks/search/index.py) and phrases look them up, by this one rule.
        CREATE MACRO search_pairs(terms) AS list_transform(range(1, len(terms)),
            i -> CASE WHEN terms[i] < '\u3400' AND terms[i + 1] < '\u3400'
                      THEN terms[i] || ' ' || terms[i + 1] END);
        """
        + _MATCHES_11,
    ),
    (
        12,
        "full-text search: a negative phrase excludes where its words are adjacent",
        """
        -- `-"central bank"` excluded every article holding both words anywhere; now only those
        -- where they stand together, matched as a phrase is (no change to the index)."""
        + _MATCHES_12,
    ),
]

LATEST_VERSION = max(version for version, _, _ in MIGRATIONS)

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""
