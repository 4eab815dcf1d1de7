"""The words stored in `ingest_errors.kind` and `ingest_errors.stage`, in one place.

Both are `StrEnum`s: a member is the plain string it stands for (`Kind.TIMEOUT == "timeout"`),
so SQL, tests and code that still writes a bare string all agree with it. The README's section
on tables lists them for users; `tests/test_kinds.py` checks that every kind the code writes is
here. HTTP errors are one kind per status (`http_404`), made by `http_kind`.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where in the data flow an error happened (`ingest_errors.stage`)."""

    FEED = "feed"  # a feed's unit as a whole (an unexpected failure, internal_error)
    FETCH = "fetch"  # downloading the feed (or a source's list)
    PARSE = "parse"  # reading the feed's or list's items
    DOWNLOAD = "download"  # downloading an item's page
    EXTRACT = "extract"  # extracting the page's text (trafilatura)
    NORMALIZE = "normalize"  # building the article record
    ARCHIVE = "archive"  # walking a feed's archive pages (backfill)
    SITEMAP = "sitemap"  # walking a sitemap (backfill)
    URLS = "urls"  # reading a list of URLs (backfill --urls)
    POST = "post"  # reading a Markdown post (backfill --from-dir)
    PAGES = "pages"  # a backfill's batch of pages as a whole
    REEXTRACT = "reextract"  # re-extracting stored articles (backfill --reextract)
    LIST = "list"  # a declared source's list page or API response


class Kind(StrEnum):
    """What went wrong (`ingest_errors.kind`, `feeds.last_error_kind`): a short stable word."""

    # fetching (the guarded client)
    TIMEOUT = "timeout"
    FEED_TIMEOUT = "feed_timeout"  # the feed's own deadline passed before this item started
    TOO_LARGE = "too_large"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    BLOCKED_ADDRESS = "blocked_address"
    CONNECTION_ERROR = "connection_error"
    BAD_URL = "bad_url"
    BAD_ENCODING = "bad_encoding"  # content coding or charset
    NOT_HTML = "not_html"
    EMPTY_PAGE = "empty_page"
    FETCH_ERROR = "fetch_error"  # an unexpected failure of one download
    # feeds, sitemaps and source lists
    NOT_A_FEED = "not_a_feed"
    NOT_A_SITEMAP = "not_a_sitemap"
    UNSAFE_XML = "unsafe_xml"
    PARSE_ERROR = "parse_error"
    PARSE_CRASH = "parse_crash"
    FEED_RECOVERED = "feed_recovered"  # feedparser recovered from invalid XML (a warning)
    TOO_MANY_ITEMS = "too_many_items"
    TOO_MANY_PAGES = "too_many_pages"
    TOO_MANY_ENTRIES = "too_many_entries"
    SELECTOR_BROKEN = "selector_broken"  # a declared source found nothing it expects
    NEEDS_BROWSER = "needs_browser"  # a source that only a browser can read
    BOOTSTRAP_FAILED = "bootstrap_failed"
    SIGNER_FAILED = "signer_failed"
    NOT_JSON = "not_json"  # a json_api source answered with something that is not JSON
    FIELD_TYPE = "field_type"  # a field's path found a list or object where text was expected
    BAD_LINK = "bad_link"  # an item's link is javascript:, empty or not http(s)
    DATE_UNIT = "date_unit"  # a warning: epoch dates in the other unit than declared
    PAGING_STUCK = "paging_stuck"  # a cursor that does not advance, or a page that repeats
    # extraction and normalization
    EXTRACT_EMPTY = "extract_empty"
    EXTRACT_ERROR = "extract_error"
    EXTRACT_CRASH = "extract_crash"
    NO_LINK = "no_link"
    NO_TITLE = "no_title"  # also a post without a title (once `missing_title`, migration 7)
    TITLE_TRUNCATED = "title_truncated"
    BAD_DATE = "bad_date"
    INVALID_FRONT_MATTER = "invalid_front_matter"
    # local files (backfill --from-dir)
    OUTSIDE_FOLDER = "outside_folder"
    NOT_REGULAR_FILE = "not_regular_file"
    UNREADABLE = "unreadable"
    # a unit's unexpected exception, contained (tasks/containment.py)
    INTERNAL_ERROR = "internal_error"


def http_kind(status: int) -> str:
    """The kind of an HTTP error status: `http_404`."""
    return f"http_{status}"
