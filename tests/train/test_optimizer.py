import numpy as np
import pytest

from toymi import TrainConfig
from toymi.experiment import learning_rate_schedule


def test_nanda_warmup_is_lr_times_min_step_over_10():
    schedule = learning_rate_schedule(TrainConfig(steps=100, lr=1e-3, warmup_steps=10))
    for step in (0, 1, 5, 10, 11, 99):
        assert float(schedule(step)) == pytest.approx(1e-3 * min(step / 10, 1), rel=1e-5)


@pytest.mark.parametrize("kind", ["cosine", "linear", "quarter_cosine"])
def test_decay_ends_at_final_fraction(kind):
    schedule = learning_rate_schedule(TrainConfig(steps=100, lr=1.0, warmup_steps=10, schedule=kind,
                                                  final_lr_frac=0.1))
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(100)) == pytest.approx(0.1, abs=1e-6)
    values = np.array([float(schedule(s)) for s in range(10, 101)])
    assert (np.diff(values) <= 1e-7).all()


def test_quarter_cosine_is_the_spd_papers_cosine():
    # the SPD paper's code (goodfire-ai/spd at a1cf5a03, `get_lr_schedule_fn`): lr · cos(π/2 · step / steps)
    schedule = learning_rate_schedule(TrainConfig(steps=100, lr=2.0, schedule="quarter_cosine"))
    for step in (0, 25, 50, 99):
        assert float(schedule(step)) == pytest.approx(2.0 * np.cos(0.5 * np.pi * step / 100), rel=1e-5)
    assert float(schedule(50)) > float(learning_rate_schedule(TrainConfig(steps=100, lr=2.0, schedule="cosine"))(50))
