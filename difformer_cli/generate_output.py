"""Reading what ``fairseq-generate`` prints: its S-, T-, H- and D- lines, by sentence id."""

import re
from typing import Dict, Iterable

_LINE = re.compile(r"^([STHD])-(\d+)\t(.*)$")


def parse_generate_output(lines: Iterable[str]) -> Dict[int, Dict[str, str]]:
    """Per sentence id, the text of its first ``S-`` (source), ``T-`` (reference), ``H-``
    (hypothesis) and ``D-`` (detokenised hypothesis) line; other lines are ignored.

    ``H-``/``D-`` lines are ``<kind>-<id>\\t<score>\\t<text>``: the score is dropped. Of several
    hypotheses of one sentence (``--nbest``) the first, the selected one, is kept."""
    entries: Dict[int, Dict[str, str]] = {}
    for line in lines:
        match = _LINE.match(line.rstrip("\n"))
        if not match:
            continue
        kind, sent_id, text = match.group(1), int(match.group(2)), match.group(3)
        if kind in "HD":
            text = text.split("\t", 1)[1] if "\t" in text else ""
        entries.setdefault(sent_id, {}).setdefault(kind, text)
    return entries
