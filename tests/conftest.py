from __future__ import annotations

import re
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "real389"


def logconv_numbers(server: str) -> dict[str, int]:
    """The 'Name:   number' lines of the logconv -V output shipped with the sample."""
    numbers: dict[str, int] = {}
    for line in (SAMPLE / f"logconv-{server}.txt").read_text().splitlines():
        m = re.match(r"^ ?-? ?([A-Za-z][A-Za-z0-9 ()/'.-]*?):\s+(\d+)(?:\s|$)", line)
        if m and m.group(1) not in numbers:
            numbers[m.group(1).strip()] = int(m.group(2))
    return numbers


@pytest.fixture(scope="session")
def sample() -> Path:
    return SAMPLE
