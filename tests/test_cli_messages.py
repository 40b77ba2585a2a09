"""What the command line tells a newcomer: the demo prints the code it runs and names its
delays as ``lrokit poll`` does."""

from __future__ import annotations

import re

import pytest

from lrokit import PollingPolicy
from lrokit._cli import main
from lrokit._delay import DELAY_LABELS
from lrokit.demo import VectorStoreClient


@pytest.mark.integration
def test_demo_prints_the_client_it_polls_with(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "0.2", "--interval", "0.05"]) == 0
    output = capsys.readouterr().out
    (client_line,) = re.findall(r"^   >>> (client = .*)$", output, re.MULTILINE)
    # The printed line is code that runs, and builds the client the patterns poll with ...
    namespace = {"VectorStoreClient": VectorStoreClient, "PollingPolicy": PollingPolicy}
    built: dict[str, object] = {"endpoint": "http://127.0.0.1:1/"}
    exec(client_line, namespace, built)
    client = built["client"]
    assert isinstance(client, VectorStoreClient)
    assert client.pipeline.polling.strategy(1) == 0.05
    # ... whose 0.05 s interval (not the 1 s default) is what the polls of pattern 1 wait.
    pattern_1 = output.split("== Pattern 1")[1].split("== Pattern 2")[0]
    delays = re.findall(r"next poll in ([\d.]+) s \(([^)]+)\)", pattern_1)
    assert delays
    assert set(delays) == {("0.05", "interval")}


@pytest.mark.integration
def test_demo_names_delays_with_the_words_of_lrokit_poll(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--duration", "0.2", "--interval", "0.05"]) == 0
    output = capsys.readouterr().out
    labels = set(re.findall(r"next poll in [\d.]+ s \(([^)]+)\)", output))
    assert labels
    assert labels <= set(DELAY_LABELS.values())
    assert "(strategy)" not in output
    for label in ("interval", "server's Retry-After"):  # the header explains both
        assert f"({label})" in output.split("== Pattern 1")[0]
