"""Tiny trained runs (seconds each) shared by the view tests (and by tests/dissect/test_recipes.py: see
tests/tiny_runs.py), and the browser (skipped where none exists)."""

import pytest

from tiny_runs import tiny_run


@pytest.fixture(scope="session")
def grokking_run():
    return tiny_run("grokking_quick")


@pytest.fixture(scope="session")
def induction_run():
    return tiny_run("induction_quick")


@pytest.fixture(scope="session")
def chromium():
    from views.browser import browser, chromium_or_skip

    sync_playwright, path = chromium_or_skip()
    with browser(sync_playwright, path) as b:
        yield b
