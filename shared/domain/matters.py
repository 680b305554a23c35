"""Several matters in one complaint (一单多诉) become several cases (拆单).

A caller with a debt dispute who adds "另外还有个事，电梯里困着人" has made two reports: one for the
mediation centre next month, one for the command centre now. The 12345 platforms split such a ticket
and link the parts. `split_matters` finds where a new matter begins: a marker that opens a new
sentence or clause (另外, 此外, 还有一件事, 再反映一个, 第二件事, 二是...), with enough said on both sides
of it to be a matter of its own. It is deliberately cautious: "另外两户" or "还有一个孩子" do not split,
and neither do the numbered points of one letter (一是…二是…).
Pure and deterministic, so a redelivered event splits the same way.
"""

from __future__ import annotations

import re

MIN_MATTER_CHARS = 12  # a part shorter than this is a remark, not a matter of its own
MAX_MATTERS = 5

# a new matter is announced at the start of a sentence or clause
_BOUNDARY = r"(?:^|(?<=[。.!！?？;；\n,，、…]))\s*"
_MARKER = re.compile(
    _BOUNDARY
    + r"(?:"
    r"另外(?:还有|再|我还|我想|想|就是|有个|有件|呢|说一下|反映|一个事|一件事|[,，:：])"
    r"|此外(?:还|[,，:：])"
    r"|还有(?:一|个|一个|件|一件)(?:事|问题|情况)"
    r"|还有个事|还有件事|另有一事|另一件事|另一个问题|另一个事"
    r"|(?:再|还|顺便|顺带)(?:反映|投诉|举报|说|问|提)(?:一下|一个|一件|个)"
    r"|第[二三四五2-5](?:件事|个问题|个事)"
    r"|还有就是|再一个|再有就是|对了[,，]|除此之外|另[:：]"
    r"|(?:我|同时)?还(?:想|要)(?:反映|投诉|举报|问|说)"
    r"|同时(?:还|我)?(?:想|要)?(?:反映|投诉|举报)"
    r")"
)


def split_matters(text: str) -> list[str]:
    """The matters of one complaint, in order; a complaint of one matter comes back whole."""
    starts = [m.start() for m in _MARKER.finditer(text)]
    parts: list[str] = []
    cut = 0
    for start in starts:
        head = text[cut:start].strip(" ，,。.;；、…")
        tail = text[start:].strip()
        if len(head) >= MIN_MATTER_CHARS and len(tail) >= MIN_MATTER_CHARS and len(parts) < MAX_MATTERS - 1:
            parts.append(text[cut:start].strip())
            cut = start
    parts.append(text[cut:].strip())
    return parts if len(parts) > 1 else [text]
