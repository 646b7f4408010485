"""The README's sample output cannot go stale: it is what the code prints."""

from __future__ import annotations

import pytest

from . import readme_sample


@pytest.mark.integration
def test_readme_sample_output_is_what_make_run_prints() -> None:
    produced, documented = readme_sample.produced(), readme_sample.in_readme()
    assert documented == produced, "README.md is stale: python -m tests.readme_sample --write"
    assert len(produced.splitlines()) <= 50  # the summary fits a 50-line terminal
