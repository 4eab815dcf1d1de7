"""The tagger on its own: topics, places and their traps, 《…》 documents, organizations, data
files, speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsflow.schemas.errors import ConfigError
from newsflow.schemas.lexicon import DEFAULT_LEXICON, load_gazetteer, load_lexicon
from newsflow.tasks.coverage.doc_titles import DocTyper, find_doc_titles
from newsflow.tasks.coverage.tag import PREFECTURE, Tagger, load_tagger


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return load_tagger()


def topics(tagger: Tagger, title: str, body: str = "") -> set[str]:
    return {t.topic for t in tagger.tag("a", title, body).topics}


def regions(tagger: Tagger, text: str) -> set[str]:
    return {r.region for r in tagger.tag("a", "", text).regions}


# --- topics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("供应链金融平台上线", set()),
        ("产业链上下游协同，资金链紧张", set()),
        ("供应链金融平台引入区块链", {"blockchain"}),
        ("区块链供应链金融", {"blockchain"}),
        ("冷链物流与链条管理", set()),
        ("Supply chain finance for exporters", set()),
        ("A cryptography conference", set()),
        ("crypto lenders and BLOCKCHAIN startups", {"crypto_regulation", "blockchain"}),
        ("Investors are fed up", set()),
        ("ＮＦＴ市场降温", {"nft"}),  # full-width Latin
        ("nft market cools", set()),  # NFT is an acronym: as written or in capitals only
        ("The E-CNY and CBDCs", {"digital_currency"}),
        ("Web3.0 基础设施与元宇宙", {"web3"}),
        ("香港稳定币条例", {"stablecoin"}),
        ("数字藏品平台整改", {"nft"}),
        ("建设区块链先导区和产业园", {"blockchain", "pilot_zone"}),
        ("数据要素市场化与数字经济", {"digital_economy"}),
        ("比特币挖矿被清理", {"crypto_regulation"}),
    ],
)
def test_topic_terms_and_false_friends(tagger: Tagger, text: str, expected: set[str]) -> None:
    assert topics(tagger, "", text) == expected


def test_title_hits_weigh_more(tagger: Tagger) -> None:
    tags = {t.topic: t for t in tagger.tag("a", "区块链新规", "区块链。区块链。").topics}
    chain = tags["blockchain"]
    assert (chain.hits, chain.title_hits) == (3, 1)
    assert chain.score == 3.0 * 1 + 2
    assert chain.terms == ["区块链"]


def test_min_score_keeps_weak_topics_out(tmp_path: Path) -> None:
    lexicon = DEFAULT_LEXICON.read_text(encoding="utf-8").replace(
        "min_score = 1.0", "min_score = 3.0", 1
    )
    path = tmp_path / "lexicon.toml"
    path.write_text(lexicon, encoding="utf-8")
    strict = Tagger(load_lexicon(path), load_gazetteer())
    assert topics(strict, "", "区块链。") == set()
    assert topics(strict, "区块链", "") == {"blockchain"}


# --- regions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "present", "absent"),
    [
        ("长沙发布数字经济政策", {"长沙市"}, set()),
        ("客厅里摆着一张长沙发", set(), {"长沙市"}),
        ("布艺长沙发成爆款", set(), {"长沙市"}),
        ("浙江门户网站改版", {"浙江省"}, {"江门市"}),
        ("江门市发布措施", {"江门市"}, set()),
        ("吉林大学举办论坛", {"吉林省"}, {"吉林市"}),
        ("吉林市场监管局", {"吉林省"}, {"吉林市"}),
        ("吉林市出台方案", {"吉林市"}, {"吉林省"}),
        ("中山大学与中山装", set(), {"中山市"}),
        ("中山市召开会议", {"中山市"}, set()),
        ("普通化工产品", set(), {"通化市"}),
        ("通化市医药产业", {"通化市"}, set()),
        ("国内江苏企业", {"江苏省"}, {"内江市"}),
        ("陕西安康", {"陕西省", "安康市"}, {"西安市"}),
        ("上海南京路", {"上海市"}, {"南京市", "海南省"}),
        ("北京时间11月15日", set(), {"北京市"}),
        ("美国德州与德州扑克", set(), {"德州市"}),
        ("山东德州建设产业园", {"德州市", "山东省"}, set()),
        ("白银价格上涨", set(), {"白银市"}),
        ("朝阳产业", set(), {"朝阳市"}),
        ("与会来宾", set(), {"来宾市"}),
        ("阿里云", set(), {"阿里地区"}),
        ("确保定期披露", set(), {"保定市"}),
        ("经营口径", set(), {"营口市"}),
        ("大同小异", set(), {"大同市"}),
        ("大理石台面", set(), {"大理白族自治州"}),
        ("大理州与大理", {"大理白族自治州"}, set()),
        ("宁德时代", set(), {"宁德市"}),
        ("青海海南州", {"青海省", "海南藏族自治州"}, {"海南省"}),
        ("内蒙古自治区和内蒙古", {"内蒙古自治区"}, set()),
        ("BEIJING, May 3 - Beijing and Xi’an", {"北京市", "西安市"}, set()),
        ("Salvador Dalí", set(), {"大理白族自治州"}),
    ],
)
def test_place_names_and_traps(
    tagger: Tagger, text: str, present: set[str], absent: set[str]
) -> None:
    found = regions(tagger, text)
    assert present <= found
    assert not (absent & found)


def test_regions_roll_up_to_provinces(tagger: Tagger) -> None:
    tags = {r.region: r for r in tagger.tag("a", "苏州", "苏州市与苏州。大理州。北京").regions}
    assert tags["苏州市"] == ("苏州市", "江苏省", PREFECTURE, 3)
    assert tags["大理白族自治州"].province == "云南省"
    assert tags["北京市"][1:3] == ("北京市", "municipality")


def test_gazetteer_is_complete() -> None:
    gazetteer = load_gazetteer()
    assert len(gazetteer.provinces) == 34
    assert sum(len(p.prefectures) for p in gazetteer.provinces) == 333
    levels = {p.level for p in gazetteer.provinces}
    assert levels == {"province", "autonomous_region", "municipality", "sar"}


# --- documents ------------------------------------------------------------------------------


def test_doc_titles_keep_parentheses_and_nested_titles() -> None:
    text = (
        "《云南省数字经济发展三年行动方案（2022—2024年）》发布。"
        "《关于印发〈数字经济发展规划〉的通知》。《未闭合\n的标题》。"
    )
    assert find_doc_titles(text) == [
        "云南省数字经济发展三年行动方案（2022—2024年）",
        "关于印发〈数字经济发展规划〉的通知",
        "数字经济发展规划",
    ]


@pytest.mark.parametrize(
    ("title", "kind"),
    [
        ("云南省数字经济发展三年行动方案（2022—2024年）", "方案"),
        ("关于加快推动区块链技术应用和产业发展的指导意见", "意见"),
        ("关于印发〈数字经济发展规划〉的通知", "通知"),
        ("虚拟资产交易平台管理办法（征求意见稿）", "办法"),
        ("中华人民共和国数据安全法", "法"),
        ("稳定币条例草案", "条例"),
        ("区块链信息服务管理规定", "规定"),
        ("人民日报", "报刊"),
        ("三体", "other"),
    ],
)
def test_doc_types_by_ending(title: str, kind: str) -> None:
    lexicon = load_lexicon()
    typer = DocTyper(
        lexicon.policy_docs.endings, lexicon.policy_docs.publications, lexicon.policy_docs.drafts
    )
    assert typer.type_of(title) == kind


# --- organizations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("工信部与工业和信息化部", {"工业和信息化部"}),
        ("央行和中国人民银行", {"中国人民银行"}),
        ("网信办", {"国家互联网信息办公室"}),
        ("深圳市发改委", set()),
        ("国家发改委", {"国家发展和改革委员会"}),
        ("金融监管总局", {"国家金融监督管理总局"}),
        ("欧洲央行与多国央行", {"European Central Bank"}),
        ("证监会发布", {"中国证券监督管理委员会"}),
        ("美国证监会。证监会称", {"U.S. Securities and Exchange Commission"}),
        ("香港证监会", {"香港证券及期货事务监察委员会"}),
        (
            "the SEC and the CFTC; FED",
            {
                "U.S. Securities and Exchange Commission",
                "U.S. Commodity Futures Trading Commission",
                "Federal Reserve",
            },
        ),
        ("CAC 40 index", set()),
        ("香港证监会发牌。证监会表示", {"香港证券及期货事务监察委员会"}),
        ("新加坡金管局与金管局", {"新加坡金融管理局"}),
        ("金管局表示", {"香港金融管理局"}),
        ("市商务部门和公安部门", set()),
    ],
)
def test_orgs_by_alias(tagger: Tagger, text: str, expected: set[str]) -> None:
    assert {o.org for o in tagger.tag("a", "", text).orgs} == expected


# --- data files -----------------------------------------------------------------------------


def test_bad_lexicon_is_one_line_config_error(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.toml"
    path.write_text("[topics.x\nterms = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_lexicon(path)
    path.write_text("[topics.x]\nlabel = 'x'\nterms = []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"topics\.x\.terms"):
        load_lexicon(path)
    with pytest.raises(ConfigError, match="not found"):
        load_lexicon(tmp_path / "missing.toml")


def test_a_term_that_is_also_a_blocker_is_refused(tmp_path: Path) -> None:
    lexicon = DEFAULT_LEXICON.read_text(encoding="utf-8").replace(
        '"美国商务部",', '"美国商务部", "国务院",', 1
    )
    path = tmp_path / "lexicon.toml"
    path.write_text(lexicon, encoding="utf-8")
    with pytest.raises(ConfigError, match="国务院"):
        Tagger(load_lexicon(path), load_gazetteer())


def test_tagger_is_rebuilt_when_the_lexicon_changes(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.toml"
    path.write_text(DEFAULT_LEXICON.read_text(encoding="utf-8"), encoding="utf-8")
    first = load_tagger(path)
    assert load_tagger(path) is first
    path.write_text(
        path.read_text(encoding="utf-8").replace('"先导区",', '"先导区", "沙盒试点",'),
        encoding="utf-8",
    )
    assert topics(load_tagger(path), "", "沙盒试点") == {"pilot_zone"}
