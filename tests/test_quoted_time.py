"""One measured default-pipeline time, from the committed ``ci/run.json``, quoted the same everywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUOTED_IN = ("README.md", "docs/run.md", "edgekit/pipeline/embedded-default.toml")
PHRASE = re.compile(r"(\d+) CPU-seconds, (\d+) s wall in `?ci/run\.json`?")
#: the other ways the default pipeline's time used to be stated ("about 2.5 minutes on 2 quiet cores", "~160 s on
#: 2 quiet cores", "about five minutes on two quiet CPU cores")
OTHER = re.compile(r"(about|~)\s*[\w.]+\s*(s|minutes?)\s+on\s+(2|two)\s+quiet\s+(CPU\s+)?cores")


def test_the_default_pipeline_time_is_the_committed_measurement_everywhere():
    run = json.loads((ROOT / "ci" / "run.json").read_text(encoding="utf-8"))
    assert run["schema"] == "edgekit.run" and run["pipeline"]["name"] == "embedded-default"
    want = (str(round(run["timings"]["cpu_seconds"])), str(round(run["seconds"])))
    for rel in QUOTED_IN:
        text = (ROOT / rel).read_text(encoding="utf-8")
        found = PHRASE.findall(text)
        assert found, f"{rel} does not quote the measured time ('N CPU-seconds, M s wall in ci/run.json')"
        assert set(found) == {want}, f"{rel} quotes {sorted(set(found))}, ci/run.json measured {want}"
        assert not OTHER.search(text), f"{rel} states the time another way: {OTHER.search(text).group(0)!r}"
