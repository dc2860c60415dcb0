"""The suite's own waits wait: a guard against a test that passes without waiting."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# `wait_for_function(` then its first argument, a string whose function is `async`
ASYNC_PREDICATE = re.compile(r"wait_for_function\(\s*f?r?(\"\"\"|'''|\"|')\s*async\b")


def test_no_wait_for_function_is_given_an_async_predicate():
    """Playwright polls `wait_for_function`'s predicate without awaiting it: an async one returns
    a promise, which counts as true at once, and the wait passes before anything it names
    (a CI failure of session 48 read the grid before it was drawn). Poll with `page.evaluate`."""
    found = [f"{path.relative_to(TESTS)}:{source[:m.start()].count(chr(10)) + 1}"
             for path in sorted(TESTS.rglob("*.py")) if path != Path(__file__).resolve()
             for source in [path.read_text()]
             for m in ASYNC_PREDICATE.finditer(source)]
    assert found == []


def test_the_guard_sees_an_async_predicate():
    assert ASYNC_PREDICATE.search('page.wait_for_function(f"""async () => { await x(); }""")')
    assert ASYNC_PREDICATE.search("page.wait_for_function(\n    'async () => 1')")
    assert not ASYNC_PREDICATE.search('page.wait_for_function("""() => window.ready""")')
