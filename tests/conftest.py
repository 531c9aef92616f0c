"""Shared fixtures. The real dataset is found through one helper; with CI=true a missing dataset fails."""

from __future__ import annotations

import os

import pytest

from infnet.data.semiseg import find_dataset


@pytest.fixture(scope="session")
def semiseg_root():
    """Root of COVID-SemiSeg (the folder holding Dataset/ and reference-outputs/)."""
    root = find_dataset(required=False)
    if root is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("COVID-SemiSeg dataset missing in CI (expected ../shared/data/COVID-SemiSeg)")
        pytest.skip("COVID-SemiSeg dataset not available")
    return root
