"""Shared fixtures. Real data is found through one helper each; with CI=true missing data fails, never skips."""

from __future__ import annotations

import os

import pytest

from infnet.data.semiseg import find_dataset
from infnet.scan.samples import find_ct_samples


def _require(root, what: str):
    if root is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{what} missing in CI (expected under ../shared/data)")
        pytest.skip(f"{what} not available")
    return root


@pytest.fixture(scope="session")
def semiseg_root():
    """Root of COVID-SemiSeg (the folder holding Dataset/ and reference-outputs/)."""
    return _require(find_dataset(required=False), "COVID-SemiSeg dataset")


@pytest.fixture(scope="session")
def ct_samples():
    """Root of the real CT samples (NIfTI, DICOM series) for the scan pipeline."""
    return _require(find_ct_samples(required=False), "ct-samples")


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (tiny models are slower with more), restoring the count after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """A per-session ONNX export cache (``$INFNET_CACHE``): tests never write to ~/.cache, models export once."""
    root = tmp_path_factory.mktemp("infnet-cache")
    before = os.environ.get("INFNET_CACHE")
    os.environ["INFNET_CACHE"] = str(root)
    yield root / "onnx"
    if before is None:
        os.environ.pop("INFNET_CACHE", None)
    else:
        os.environ["INFNET_CACHE"] = before
