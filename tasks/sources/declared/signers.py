"""Request signers a declared source may name (`sign = "cls"`): small functions in a registry.

A signer takes the request's query parameters and returns them signed; a failure is an
ItemError("signer_failed") recorded against the source.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from urllib.parse import urlencode

from newsflow.schemas.errors import ItemError

LOGGER = logging.getLogger(__name__)

Signer = Callable[[dict[str, str]], dict[str, str]]

# cls.cn's web client parameters, as RSSHub's lib/routes/cls/utils.ts sends them.
CLS_BASE_PARAMS = {"appName": "CailianpressWeb", "os": "web", "sv": "7.7.5"}


def sign_cls(params: dict[str, str]) -> dict[str, str]:
    """cls.cn: the base parameters added, the query sorted by key, then
    `sign = md5(sha1(query).hexdigest()).hexdigest()` appended (RSSHub lib/routes/cls/utils.ts:
    URLSearchParams.sort(), CryptoJS.MD5(CryptoJS.SHA1(query).toString()))."""
    merged = {**CLS_BASE_PARAMS, **params}
    # URLSearchParams.sort() is a stable sort by key; its toString() is form-encoding.
    ordered = sorted(merged.items(), key=lambda kv: kv[0])
    query = urlencode(ordered)
    sha1 = hashlib.sha1(query.encode("utf-8")).hexdigest()
    return {**dict(ordered), "sign": hashlib.md5(sha1.encode("ascii")).hexdigest()}


SIGNERS: dict[str, Signer] = {"cls": sign_cls}


def sign(name: str, params: dict[str, str], url: str) -> dict[str, str]:
    try:
        return SIGNERS[name](params)
    except Exception as exc:  # a signer is site code: any failure is this source's, recorded
        LOGGER.info("signer %s failed", name, exc_info=True)
        raise ItemError(
            "signer_failed", f"signer {name!r} failed: {type(exc).__name__}: {exc}", url
        ) from exc
