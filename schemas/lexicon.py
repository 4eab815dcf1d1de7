"""The coverage-analysis data files: the topic lexicon and the gazetteer (TOML, user-editable).

Both ship in this package (`schemas/lexicon.toml`, `schemas/gazetteer.toml`); a user points
NEWSFLOW_LEXICON / NEWSFLOW_GAZETTEER (or `newsflow retag --lexicon/--gazetteer`) at a copy.
Every problem with a file is a one-line ConfigError naming it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from newsflow.schemas.errors import ConfigError

DEFAULT_LEXICON = Path(__file__).with_name("lexicon.toml")
DEFAULT_GAZETTEER = Path(__file__).with_name("gazetteer.toml")

ProvinceLevel = Literal["province", "autonomous_region", "municipality", "sar"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_blank(terms: list[str]) -> list[str]:
    cleaned = [t.strip() for t in terms]
    if any(not t for t in cleaned):
        raise ValueError("empty term")
    return cleaned


class Scoring(_Strict):
    title_weight: float = Field(default=3.0, ge=0)
    min_score: float = Field(default=1.0, gt=0)


class FalseFriends(_Strict):
    terms: list[str] = []

    _clean = field_validator("terms")(_no_blank)


class TopicConfig(_Strict):
    label: str
    terms: list[str] = Field(min_length=1)
    min_score: float | None = Field(default=None, gt=0)

    _clean = field_validator("terms")(_no_blank)


class OrgConfig(_Strict):
    name: str
    country: str
    terms: list[str] = Field(min_length=1)
    # Another org's short name that means this one in an article naming this one otherwise.
    in_context: list[str] = []

    _clean = field_validator("terms")(_no_blank)


class OrgsConfig(_Strict):
    not_orgs: list[str] = []
    entries: list[OrgConfig] = []


class PolicyDocsConfig(_Strict):
    endings: list[str] = []
    publications: list[str] = []
    drafts: list[str] = []


class Lexicon(_Strict):
    scoring: Scoring = Scoring()
    false_friends: FalseFriends = FalseFriends()
    topics: dict[str, TopicConfig] = Field(min_length=1)
    orgs: OrgsConfig = OrgsConfig()
    policy_docs: PolicyDocsConfig = PolicyDocsConfig()

    def min_score(self, topic: str) -> float:
        return self.topics[topic].min_score or self.scoring.min_score


class PrefectureConfig(_Strict):
    name: str
    names: list[str] = []
    en: list[str] = []


class ProvinceConfig(_Strict):
    name: str
    level: ProvinceLevel
    names: list[str] = []
    en: list[str] = []
    prefectures: list[PrefectureConfig] = []


class Gazetteer(_Strict):
    not_places: list[str] = []
    still_places: list[str] = []
    provinces: list[ProvinceConfig] = Field(min_length=1)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def _read_toml(path: Path, what: str) -> dict[str, object]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc


def load_lexicon(path: Path | None = None) -> Lexicon:
    path = path or DEFAULT_LEXICON
    try:
        return Lexicon(**_read_toml(path, "lexicon"))  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"lexicon {path}: {_first_error(exc)}") from exc


def load_gazetteer(path: Path | None = None) -> Gazetteer:
    path = path or DEFAULT_GAZETTEER
    try:
        return Gazetteer(**_read_toml(path, "gazetteer"))  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"gazetteer {path}: {_first_error(exc)}") from exc
