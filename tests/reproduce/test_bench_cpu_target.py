"""``reproduce bench-cpu``: the shipped model's wrapper units beside the recorded ones, and
the page's verdict on its bars. (Its smoke setting runs end to end in test_runner.py.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from keypoint_wm.reproduce import bench_cpu
from keypoint_wm.reproduce.protocol import UnitResult, load_results

RECORDS = Path(__file__).resolve().parents[2] / "docs" / "results" / "bench-cpu"


def test_the_recorded_units_are_the_protocols_and_current():
    protocol = bench_cpu.protocol()
    recorded = load_results(RECORDS)
    assert recorded  # the published records
    for name, record in recorded.items():
        unit = protocol.unit(name)
        assert record.settings == unit.digest and record.command == unit.shown(), name
    assert set(protocol.current(recorded)) == set(recorded)
    default = {u.name: u for u in protocol.units if u.name.startswith("wrapper-default")}
    assert set(default) == {"wrapper-default-native", "wrapper-default-avx2"}
    for isa, unit in default.items():
        assert "bench wrapper --quiet --run default --json" in unit.shown(), isa
        assert unit.exclusive
    assert default["wrapper-default-avx2"].env == protocol.unit("wrapper-avx2").env != ()
    assert default["wrapper-default-native"].env == ()


def _default_record(unit: str, ratios: dict[str, float]) -> UnitResult:
    template = load_results(RECORDS)["wrapper-avx2"]
    figures = {
        **template.figures,
        "model": {"run": "default", "weights": "fa380519bd521dc6", "preset": None},
        "ratios": ratios,
    }
    return replace(template, unit=unit, figures=figures)


def test_the_page_states_the_bars_and_whether_the_figures_meet_them():
    protocol = bench_cpu.protocol()
    recorded = load_results(RECORDS)
    page = protocol.page(recorded, RECORDS.parent)
    assert "## The shipped default model's wrapper" in page
    assert "at least 0.8 with 1 env and at least 0.9 with 8 envs" in page
    others = {n: r for n, r in recorded.items() if not n.startswith("wrapper-default")}
    assert "| avx2 | not run yet |" in protocol.page(others, RECORDS.parent)
    results = {
        "wrapper-default-avx2": _default_record(
            "wrapper-default-avx2", {"bare_vs_wrapped_1env": 0.83, "bare_vs_wrapped_8env": 0.88}
        ),
        "wrapper-default-native": _default_record(
            "wrapper-default-native", {"bare_vs_wrapped_1env": 0.91, "bare_vs_wrapped_8env": 0.95}
        ),
    }
    page = protocol.page(results, RECORDS.parent)
    assert (
        "| avx2 | default (weights fa380519bd521dc6) | 0.83: meets it | 0.88: misses it |" in page
    )
    assert "| native | default (weights fa380519bd521dc6) | 0.91 | 0.95 |" in page
    assert (
        "| wrapper-default | avx2 | bare_vs_wrapped_1env 0.83, bare_vs_wrapped_8env 0.88 |" in page
    )
    smoke = _default_record("wrapper-default-avx2", {"bare_vs_wrapped_1env": 0.5,
                                                     "bare_vs_wrapped_2env": 0.6})  # fmt: skip
    smoke = replace(smoke, figures={**smoke.figures, "num_envs": 2})
    page = protocol.page({"wrapper-default-avx2": smoke}, RECORDS.parent)
    assert "| 0.50: misses it | not measured (2 envs) |" in page
