"""A generated block of the README, between its ``<!-- name:start -->`` and ``<!-- name:end -->`` markers."""

from __future__ import annotations

import re

from conftest import ROOT


def block(name: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    found = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), readme, re.S)
    assert found, f"the README lacks its {start} ... {end} markers"
    return found.group(1)
