"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO_ROOT.parent / "shared" / "corpora"


@pytest.fixture
def shared_corpora() -> Path:
    """The real recordings beside the project (read-only); skips when absent."""
    if not SHARED_CORPORA.is_dir():
        pytest.skip("../shared/corpora is not present on this machine")
    return SHARED_CORPORA
