import numpy as np
import pytest

from toymi import TrainConfig
from toymi.experiment import learning_rate_schedule


def test_nanda_warmup_is_lr_times_min_step_over_10():
    schedule = learning_rate_schedule(TrainConfig(steps=100, lr=1e-3, warmup_steps=10))
    for step in (0, 1, 5, 10, 11, 99):
        assert float(schedule(step)) == pytest.approx(1e-3 * min(step / 10, 1), rel=1e-5)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_decay_ends_at_final_fraction(kind):
    schedule = learning_rate_schedule(TrainConfig(steps=100, lr=1.0, warmup_steps=10, schedule=kind,
                                                  final_lr_frac=0.1))
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(100)) == pytest.approx(0.1, abs=1e-6)
    values = np.array([float(schedule(s)) for s in range(10, 101)])
    assert (np.diff(values) <= 1e-7).all()
