"""The CompStat report's notes (and the names of its tests) in the report's language.

The statistics explain themselves in English (``notes`` of their results, messages of the
errors that leave a section out); the JSON keeps those words.  A Chinese report shows each note
in Chinese: every sentence the statistics write has a pattern here whose fields (dates, counts,
names) are carried over into its Chinese form.  A note without a pattern (a statistic newer than
this table) is shown as written, so nothing is lost.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["SECTION_NOTES", "localise_note"]

Lang = Literal["zh", "en"]

#: Prefixes of the notes that say why a section of the report is left out.
SECTION_NOTES = {
    "clearance": "破案率",
    "quiet days": "零发案天数",
    "hour profile": "发案时段分布",
}

#: English sentence (a regular expression with named fields) -> Chinese template.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(english), chinese)
    for english, chinese in (
        (
            r"none of these incidents has a known outcome \(the solved column is empty\), "
            r"so no clearance rate can be computed",
            "这些警情均无已知处理结果（solved 列为空），无法计算破案率",
        ),
        (
            r"(?P<statistic>.+?) needs times to the (?P<unit>day|minute), but (?P<n>\d+) "
            r"incident\(s\) are known only to the (?P<kinds>.+)",
            "{statistic}需要精确到{unit}的时间，但有 {n} 起警情的时间仅精确到{kinds}",
        ),
        (
            r"some incidents are known only to the month; the period (?P<period>.+) must start "
            r"on the first and end on the last day of a month",
            "部分警情的时间仅精确到月：统计期 {period} 须从某月第一天开始、到某月最后一天结束",
        ),
        (
            r"the data holds no incident: every day counts as a zero day",
            "数据中没有警情：每一天都按零发案计",
        ),
        (
            r"the data starts on (?P<day>[\d-]+), after the period starts: days before it count "
            r"as zero days although nothing is known about them",
            "数据始于 {day}，晚于统计期开始：此前的日子按零发案计，但其实际情况未知",
        ),
        (
            r"the data ends on (?P<day>[\d-]+), before the period ends: later days count as "
            r"zero days although nothing is known about them",
            "数据止于 {day}，早于统计期结束：此后的日子按零发案计，但其实际情况未知",
        ),
        (
            r"(?P<n>\d+) incident\(s\) have no (?P<level>\w+); they are counted under "
            r"'(?P<name>[^']+)' \(import them with a city pack to assign jurisdictions\)",
            "{n} 起警情没有所属{level}，计入“{name}”（导入时指定城市数据包即可划分辖区）",
        ),
        (
            r"no CJK font is installed: chart labels are in English",
            "未安装中文字体：图表标注为英文",
        ),
        # names of the hour-shift tests (analytics.profile.shift_test)
        (r"chi-square test of homogeneity", "卡方齐性检验"),
        (
            r"chi-square test of homogeneity \(Monte Carlo p-value\)",
            "卡方齐性检验（蒙特卡洛 p 值）",
        ),
    )
)

#: Words inside the English sentences that the Chinese templates show translated.
_WORDS = {
    "day": "日",
    "minute": "分钟",
    "month": "月",
    "week": "周",
    "exact": "分钟",
    "station": "派出所辖区",
    "bureau": "分局",
    "zone": "责任区",
    "city": "城市",
    "counting days without incidents": "统计零发案天数",
    "an hour-of-day profile": "发案时段分布",
}


def _word(text: str) -> str:
    """A field of a sentence in Chinese: known words translated, lists of them too."""
    parts = re.split(r"( and |, | or )", text)
    joins = {" and ": "和", ", ": "、", " or ": "或"}
    return "".join(joins.get(p, _WORDS.get(p, p)) for p in parts)


def localise_note(note: str, lang: Lang) -> str:
    """One note of the report in ``lang`` (English notes are returned unchanged).

    Parameters
    ----------
    note : str
        A note as the statistics write it, optionally prefixed ``"<section>: "``.
    lang : {"zh", "en"}

    Returns
    -------
    str
    """
    if lang == "en":
        return note
    section, sep, rest = note.partition(": ")
    if sep and section in SECTION_NOTES:
        return f"{SECTION_NOTES[section]}：{localise_note(rest, lang)}"
    for pattern, template in _PATTERNS:
        match = pattern.fullmatch(note)
        if match:
            return template.format(**{k: _word(v) for k, v in match.groupdict().items()})
    return note
