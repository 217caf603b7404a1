"""The benchmark's verdict on a query's lag: level peaks are sustained whatever the saw-tooth."""

from hypothesis import given
from hypothesis import strategies as st

from globalmart.streaming.lag import lag_verdict, window_peaks


def saw_tooth(trigger: float, rate: float, growth_per_minute: float, phase: float, seconds: float = 600, every: float = 5):
    """Lag sampled every ``every`` s of a query reading every ``trigger`` s at ``rate`` records/s,
    with a backlog growing by ``growth_per_minute``."""
    samples, t = [], 0.0
    while t <= seconds:
        climbing = ((t + phase) % trigger) * rate
        samples.append((t, int(climbing + growth_per_minute * t / 60)))
        t += every
    return samples


@given(trigger=st.sampled_from([0.5, 1.0, 30.0, 60.0]), rate=st.floats(10, 20_000), phase=st.floats(0, 60))
def test_a_query_that_keeps_up_is_sustained_whatever_its_trigger_and_phase(trigger, rate, phase):
    verdict = lag_verdict(saw_tooth(trigger, rate, 0.0, phase), trigger, rate)
    assert verdict.sustained and verdict.peak_slope_per_minute <= verdict.tolerance_per_minute


@given(trigger=st.sampled_from([0.5, 1.0, 30.0, 60.0]), rate=st.floats(100, 20_000), phase=st.floats(0, 60),
       share=st.floats(0.05, 1.0))
def test_a_growing_backlog_is_not_sustained(trigger, rate, phase, share):
    growth = share * rate * 60  # a backlog growing by at least 5 % of the input per minute
    verdict = lag_verdict(saw_tooth(trigger, rate, growth, phase), trigger, rate)
    assert not verdict.sustained and verdict.peak_slope_per_minute > 0


def test_peaks_are_the_largest_lag_of_each_window():
    samples = [(0, 5), (10, 50), (20, 0), (30, 7), (45, 70), (50, 1), (60, 2), (65, 0)]
    assert window_peaks(samples, 30) == [(15.0, 50), (45.0, 70)]  # the last, partial window left out
    assert lag_verdict([], 1.0, 100).peaks == 0
