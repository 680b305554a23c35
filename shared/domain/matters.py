"""Several matters in one complaint (一单多诉) become several cases (拆单).

A caller with a debt dispute who adds "另外还有个事，电梯里困着人" has made two reports: one for the
mediation centre next month, one for the command centre now. The 12345 platforms split such a ticket
and link the parts. `split_matters` finds where a new matter begins: a marker that opens a new
sentence or clause (另外, 此外, 还有一件事, 再反映一个, 第二件事, the second item of a numbered list...),
with enough said on both sides of it to be a matter of its own. It is deliberately cautious: "另外两户"
or "还有一个孩子" do not split, and neither do the points of one request (一是…二是…). Pure and
deterministic (given the same classifier for `topics`), so a redelivered event splits the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence

# what each candidate part is about; equal neighbours are one matter
TopicsOf = Callable[[Sequence[str]], Sequence[Hashable]]

MIN_MATTER_CHARS = 12  # a part shorter than this is a remark, not a matter of its own
MIN_SAID_CHARS = 8  # what follows a marker before the next one: "对了还有个事" alone says nothing yet
MAX_MATTERS = 5

# a new matter is announced at the start of a sentence, a clause or a line
_BOUNDARY = r"(?:^|(?<=[。.!！?？;；\n,，、…:：\s]))"
_MARKER = re.compile(
    _BOUNDARY
    + r"(?:"
    # the operator's summary: 来电人还反映 / 来访人同时反映 / 来电人顺便咨询
    r"(?:来电人|来访人|报警人|来信人|反映人|诉求人|该户|该村民)(?:还|又|同时|另外|顺便|最后|另)(?:反映|说|称|咨询|投诉|举报|提出|表示|要求|问)"
    r"|另外(?:还有|再|我还|我想|想|就是|有个|有件|呢|说一下|反映|一个|一件|要反映|[,，:：\s])"
    r"|我另外|此外(?:还|[,，:：])|另报|另[,，:：]|另外一个"
    r"|还有(?:一|个|一个|件|一件)(?:事|问题|情况|诉求)"
    r"|还有个事|还有件事|另有一事|另一件事|另一个问题|另一个事"
    r"|(?:哦|对了|噢|啊)?还有(?:啊|呀|哈|[,，:：\s])"
    r"|(?:再|还|顺便|顺带)(?:反映|投诉|举报|说|问|提|咨询)(?:一下|一个|一件|个|下)"
    r"|(?:再说|再讲)?第[二三四五2-5](?:件事|个问题|个事|个|[,，、:：])"
    r"|再就是|再一个|再有就是|对了[,，\s]|对了还有|除此之外"
    r"|(?:我|同时)?还(?:想|要)(?:反映|投诉|举报|问|说|咨询)"
    r"|同时(?:还|我)?(?:想|要)?(?:反映|投诉|举报|[,，])"
    # a numbered list: each item after the first is a matter of its own (not 一是…二是… within one)
    r"|(?P<item>(?:[2-9]|[二三四五六七八九])(?:[.．、]|\)|）)(?![0-9一二三四五六七八九十几两])"
    r"|[(（](?:[2-9]|[二三四五六七八九])[)）])"
    r")"
)


_FIRST_ITEM = re.compile(_BOUNDARY + r"(?:[1一](?:[.．、]|\)|）)|[(（][1一][)）])")


def may_hold_several(text: str) -> bool:
    """Whether a complaint has any marker of another matter: most have none, and need no splitting."""
    return _MARKER.search(text) is not None


def split_matters(text: str, topics: TopicsOf | None = None) -> list[str]:
    """The matters of one complaint, in order; a complaint of one matter comes back whole.

    `topics`, given the candidate parts, names what each is about (the classifier's category and
    danger); neighbouring parts about the same thing are one matter told in two breaths ("还有啊，他们卸
    货的车就停在盲道上" after a complaint about the same shop) and are joined again."""
    markers = list(_MARKER.finditer(text))
    cuts = [0]
    for m, following in zip(markers, [*markers[1:], None], strict=False):  # None ends the last
        if m.group("item") and not _FIRST_ITEM.search(text, 0, m.start()):
            continue  # "三、四个人" is a count, not the third item of a list that has no first
        head = text[cuts[-1] : m.start()].strip(" ，,。.;；、…\n")
        said = text[m.end() : following.start() if following else len(text)].strip(" ，,。.;；、…:：\n")
        if len(head) >= MIN_MATTER_CHARS and len(said) >= MIN_SAID_CHARS and len(cuts) < MAX_MATTERS:
            cuts.append(m.start())
    if len(cuts) > 1 and topics is not None:
        keys = topics([text[a:b] for a, b in zip(cuts, [*cuts[1:], len(text)], strict=True)])
        cuts = [cut for i, cut in enumerate(cuts) if i == 0 or keys[i] != keys[i - 1]]
    if len(cuts) == 1:
        return [text]
    return [text[a:b].strip() for a, b in zip(cuts, [*cuts[1:], len(text)], strict=True)]
