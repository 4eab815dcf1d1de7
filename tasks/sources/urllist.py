"""A file of URLs for a backfill: one per line, `#` starts a comment, blank lines ignored."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urldefrag

from newsflow.schemas.errors import ConfigError, ItemError
from newsflow.schemas.models import FeedEntry, IngestErrorRecord
from newsflow.tasks.sources.bounded import read_regular_file

# A comment is a whole line, or follows whitespace: `#` inside a URL is its fragment.
_COMMENT_RE = re.compile(r"(?:^|\s)#.*$")


def read_url_file(path: Path, max_bytes: int) -> tuple[list[FeedEntry], list[IngestErrorRecord]]:
    """Entries for the file's URLs (each once, in order) and an error row per line that is not
    an http(s) URL. The file is read as other local inputs are: a regular file (no FIFO, no
    device) of at most `max_bytes`."""
    try:
        text = read_regular_file(path, path.parent, max_bytes).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, ItemError) as exc:
        raise ConfigError(f"cannot read URL file {path}: {exc}") from exc
    urls: dict[str, None] = {}
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        url = _COMMENT_RE.sub("", line).strip()
        if not url:
            continue
        if url.lower().startswith(("http://", "https://")) and " " not in url:
            # A fragment is a place in the page, not another page.
            urls.setdefault(urldefrag(url).url)
        else:
            errors.append(
                IngestErrorRecord(
                    stage="urls",
                    url=url[:2000],
                    kind="bad_url",
                    message=f"{path}:{number}: not an http(s) URL: {url[:200]!r}",
                )
            )
    return [FeedEntry(link=url) for url in urls], errors
