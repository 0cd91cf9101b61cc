"""The soak's memory summary (bench/throughput.py): first, last, max and the least-squares
growth per 10,000 cases of each service's resident memory."""
import pytest

from bench.throughput import soak_summary


def test_a_steady_service_grows_by_nothing_and_a_leaking_one_by_its_slope():
    samples = [(cases, {"steady": 80.0, "leaking": 70.0 + cases / 1000}) for cases in (1000, 2000, 3000, 4000)]
    summary = soak_summary(samples)
    assert summary["steady"] == {"first": 80.0, "last": 80.0, "max": 80.0, "growth_per_10k": 0.0}
    assert summary["leaking"]["first"] == 71.0 and summary["leaking"]["max"] == 74.0
    assert summary["leaking"]["growth_per_10k"] == pytest.approx(10.0)


def test_a_service_without_a_reading_in_a_sample_is_summarised_from_the_others():
    samples = [(1000, {"notify": 84.0}), (2000, {"notify": None}), (3000, {"notify": 88.0})]
    assert soak_summary(samples)["notify"]["growth_per_10k"] == pytest.approx(20.0)
