"""Cascade lengths and the questions built to have them (notebooks/06_addition.ipynb, benchmarks/addition_cascades.py)."""

import jax

from toymi.analysis.addition import cascade_length, cascade_questions
from toymi.tasks.addition import digits_of


def _length(a: int, b: int) -> int:
    return int(cascade_length(digits_of(a, 5)[None], digits_of(b, 5)[None])[0])


def test_cascade_length_of_known_questions():
    assert _length(12345, 54321) == 0  # no carry
    assert _length(15, 5) == 0  # a carry used directly by the tens
    assert _length(4450, 5550) == 2  # the tens' carry through the sum-9 hundreds and thousands
    assert _length(99999, 1) == 4  # through every sum-9 digit to s5


def test_cascade_questions_have_at_least_their_length():
    for k in range(5):
        a, b = cascade_questions(jax.random.PRNGKey(k), 5, k, 256)
        lengths = cascade_length(a, b)
        assert a.shape == b.shape == (256, 5) and lengths.min() >= k
        assert (lengths == k).mean() > 0.5  # most have exactly the length asked for
