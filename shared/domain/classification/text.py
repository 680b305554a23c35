"""Text preparation: normalisation, clauses, jieba segmentation and negation scope.

jieba is used where word boundaries matter: to confirm that a short term is a whole word ("打" in
"打我" but not in "打电话") and to find the scope of a negation ("没有人打我", "他没动手") while
leaving threats such as "没人管就要砍死我" alone. Segmentation is done lazily, only for the clauses
in which such a term matched, which keeps throughput high; the dictionary is a trimmed copy of
jieba's own plus the rule terms, built with the model (`tools.model`), which keeps the start-up time low.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import jieba

# Homophone typos and variants that callers and transcribers write; mapped before matching so that
# both the rules and the model see one spelling.
_VARIANTS = {
    "以经": "已经",
    "煤汽": "煤气",
    "燃汽": "燃气",
    "物叶": "物业",
    "拖久": "拖欠",
    "托欠": "拖欠",
    "工姿": "工资",
    "报筹": "报酬",
    "赔尝": "赔偿",
    "陪偿": "赔偿",
    "诈编": "诈骗",
    "帐": "账",
}
_VARIANT_RE = re.compile("|".join(map(re.escape, sorted(_VARIANTS, key=len, reverse=True))))
_SPACE_RE = re.compile(r"[ \t\u3000\xa0]+")

CLAUSE_RE = re.compile(r"[^，,。.!！?？;；:：\n、…~～\"“”'‘’()（）【】\[\]<>《》|/]+")

# Negation cues, as whole jieba tokens (so "不停", "不断", "没想到", "不让" are not cues).
NEGATION_CUES = frozenset(
    {
        "不", "没", "没有", "未", "并未", "并没", "并没有", "从未", "从没", "从没有", "从来不", "从来没",
        "从来没有", "别", "不会", "不要", "不用", "不再", "没再", "未曾", "不曾", "无", "并非", "不是",
        "没人", "没有人", "决不", "绝不", "绝对不", "不至于", "并不", "也没", "也没有", "都没", "都没有",
        "还没", "还没有", "尚未", "没敢", "不准备", "不打算", "不想",
    }
)  # fmt: skip
# Tokens that close a negation's scope: what follows is asserted again ("没人管就要砍死我").
SCOPE_BREAKERS = frozenset(
    {
        "就", "就要", "就会", "便", "才", "否则", "不然", "要不", "要不然", "的话", "但", "但是", "可", "可是",
        "却", "还", "还要", "还是", "又", "又要", "再", "然后", "结果", "而且", "反而", "竟然", "居然",
        "还说", "扬言", "说要", "要是", "如果", "只要", "直接", "现在", "今天", "马上", "已经",
    }
)  # fmt: skip
NEGATION_WINDOW_TOKENS = 4
_CUE_CHARS = frozenset("不没未别无非")  # every cue above contains one of these
_CUE_WINDOW_CHARS = 12  # 4 tokens are rarely longer than this


def normalize(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII), lower case, one space, common typos fixed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SPACE_RE.sub(" ", text).strip()
    return _VARIANT_RE.sub(lambda m: _VARIANTS[m.group(0)], text)


def clause_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in CLAUSE_RE.finditer(text)]


def dictionary_words(extra_words: Iterable[str]) -> list[str]:
    """The rule terms the segmenter's dictionary must hold as words (jieba's entries cannot hold spaces)."""
    return sorted({w for w in extra_words if w and " " not in w})


def words_digest(words: Iterable[str]) -> str:
    """Names the rule terms a dictionary was built with: a model built for other rules is refused at load."""
    return hashlib.sha256("\n".join(dictionary_words(words)).encode()).hexdigest()[:24]


class Segmenter:
    """jieba over a dictionary built with the model. Read only: jieba would write a cache of the parsed
    dictionary to a temporary directory, which saves ~0.05 s of a start and needs a writable disk."""

    def __init__(self, dictionary: Path) -> None:
        jieba.setLogLevel(logging.WARNING)
        self._tokenizer = jieba.Tokenizer(str(dictionary))
        # what Tokenizer.initialize does (jieba 0.42.1, pinned), less its cache: parse the word list
        with dictionary.open("rb") as fh:
            self._tokenizer.FREQ, self._tokenizer.total = self._tokenizer.gen_pfdict(fh)
        self._tokenizer.initialized = True
        self._cut = lru_cache(maxsize=4096)(self._cut_uncached)

    def _cut_uncached(self, clause: str) -> tuple[tuple[str, int, int], ...]:
        return tuple(self._tokenizer.tokenize(clause, HMM=False))

    def tokens(self, clause: str) -> tuple[tuple[str, int, int], ...]:
        """(word, start, end) tokens of one clause, offsets relative to the clause."""
        return self._cut(clause)


class ClauseView:
    """One clause of a text, segmented on first use."""

    __slots__ = ("_segmenter", "_tokens", "end", "start", "text")

    def __init__(self, text: str, start: int, end: int, segmenter: Segmenter) -> None:
        self.text = text[start:end]
        self.start = start
        self.end = end
        self._segmenter = segmenter
        self._tokens: tuple[tuple[str, int, int], ...] | None = None

    @property
    def tokens(self) -> tuple[tuple[str, int, int], ...]:
        if self._tokens is None:
            self._tokens = self._segmenter.tokens(self.text)
        return self._tokens

    def is_word(self, start: int, end: int) -> bool:
        """Whether text[start:end] (absolute offsets) begins and ends on token boundaries."""
        s, e = start - self.start, end - self.start
        starts = {t[1] for t in self.tokens}
        ends = {t[2] for t in self.tokens}
        return s in starts and e in ends

    def negation_before(self, start: int, extra_cues: frozenset[str] = frozenset()) -> str | None:
        """The negation cue whose scope covers the term starting at `start` (absolute), if any."""
        s = start - self.start
        # cheap test first: with no cue character just before the term, skip segmenting the clause
        window = self.text[max(0, s - _CUE_WINDOW_CHARS) : s + 1]
        if not any(ch in _CUE_CHARS for ch in window) and not any(c in window for c in extra_cues):
            return None
        before = [t for t in self.tokens if t[2] <= s]
        for word, _, _ in reversed(before[-NEGATION_WINDOW_TOKENS:]):
            if word in extra_cues:  # checked first: "要是" is a hypothetical cue here, not a breaker
                return word
            if word in SCOPE_BREAKERS:
                return None
            if word in NEGATION_CUES:
                return word
        # a cue glued to the term's first characters by the segmenter ("没动手" as one token)
        inside = [t for t in self.tokens if t[1] < s < t[2]]
        for word, ts, _ in inside:
            head = word[: s - ts]
            if head in NEGATION_CUES or head in extra_cues:
                return head
        return None
