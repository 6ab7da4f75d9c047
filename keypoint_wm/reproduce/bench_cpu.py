"""``reproduce bench-cpu``: the CPU benchmarks, natively and as an AVX2-only CPU runs them.

Each unit is one ``keypoint-wm bench`` command that runs alone with every core (a timing is
never taken beside another unit): the latent wrapper against the bare environment (1 and 8
envs), the training step of ``basketball-cpu`` and of the paper-size ``dmcs`` preset (fast
path against fp32 eager), and the collector against a plain dm_control loop; each natively
and with the kernels capped at AVX2 (:data:`keypoint_wm.benchmark.AVX2_CAP`). Figures from
different machines are different rows, never pooled: a unit's record names its CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keypoint_wm.reproduce.pages import header, units_table
from keypoint_wm.reproduce.protocol import OUT, Protocol, Unit, UnitResult, read_json

__all__ = ["protocol"]


def _train_bench(preset: str, *, steps: int, warmup: int) -> tuple[str, ...]:
    """``bench train`` of ``preset`` on the CPU."""
    return (
        "bench",
        "train",
        "--device",
        "cpu",
        "--preset",
        preset,
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
    )


BENCHES: dict[str, tuple[str, ...]] = {
    "wrapper": ("bench", "wrapper", "--quiet"),
    "train-basketball-cpu": _train_bench("basketball-cpu", steps=20, warmup=3),
    "train-dmcs": _train_bench("dmcs", steps=2, warmup=1),
    "collect": ("bench", "collect"),
}
"""The benchmarks, each a ``keypoint-wm`` command (``--json`` added per unit)."""

SMOKE: dict[str, tuple[str, ...]] = {
    "train-basketball-cpu": _train_bench("basketball-cpu", steps=1, warmup=0),
}


def _unit(name: str, argv: tuple[str, ...], isa: str) -> Unit:
    from keypoint_wm.benchmark import AVX2_CAP

    json_path = f"{OUT}/bench/{name}-{isa}.json"

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        return {k: v for k, v in payload.items() if k not in ("per_step", "samples")}

    env = tuple(AVX2_CAP.items()) if isa == "avx2" else ()
    return Unit(
        f"{name}-{isa}",
        (*argv, "--json", json_path),
        figures=figures,
        env=env,
        exclusive=True,
    )


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: one short benchmark, native and capped."""
    benches = SMOKE if smoke else BENCHES
    units = tuple(
        _unit(name, argv, isa) for isa in ("native", "avx2") for name, argv in benches.items()
    )
    return Protocol(
        name="bench-cpu",
        summary="the CPU benchmarks (latent wrapper, training step, collector), natively "
        "and AVX2-capped",
        settings={"benches": {k: list(v) for k, v in benches.items()}, "isa": ["native", "avx2"]},
        units=units,
        page=lambda results, root: _page(benches, results),
        title="CPU benchmarks: the training step and the latent wrapper, native and AVX2-capped",
        headline=lambda results: _headline(benches, results),
    )


def _ratios(result: UnitResult) -> str:
    ratios = result.figures.get("ratios", {})
    return ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) or "-"


def _headline(benches: dict[str, tuple[str, ...]], results: dict[str, UnitResult]) -> str:
    cells = [
        f"{name} ({isa}) {_ratios(result)}"
        for isa in ("native", "avx2")
        for name in benches
        if (result := results.get(f"{name}-{isa}")) is not None
    ]
    if not cells:
        return 'in progress: "not run yet"'
    machine = next(r for r in results.values()).machine.get("cpu")
    return f"ours over the baseline's speed on {machine}: " + "; ".join(cells)


def _page(benches: dict[str, tuple[str, ...]], results: dict[str, UnitResult]) -> str:
    lines = header(
        "bench-cpu",
        "CPU benchmarks",
        "Each benchmark ran alone on the machine its row names, natively and with PyTorch's, "
        "oneDNN's and MKL's kernels capped at AVX2 (what an AVX2-only CPU runs, at this "
        "machine's clock). Ratios are ours over the baseline's speed (bigger is better); "
        "figures from a faster machine than yours are faster than you will see.",
    )
    lines += ["| benchmark | ISA | ratios | seconds per step | machine |", "|---|---|---|---|---|"]
    for isa in ("native", "avx2"):
        for name in benches:
            result = results.get(f"{name}-{isa}")
            if result is None:
                lines.append(f"| {name} | {isa} | not run yet | | |")
                continue
            shown = _ratios(result)
            steps = result.figures.get("seconds_per_step", {})
            timing = ", ".join(f"{k} {v:.3g}" for k, v in steps.items()) or "in the record"
            host = result.machine
            where = f"{host.get('cpu')} ({', '.join(host.get('cpu_flags', []))})"
            lines.append(f"| {name} | {isa} | {shown} | {timing} | {where} |")
    lines += ["", "Every figure of each benchmark is in its unit record (`bench-cpu/`).", ""]
    lines += units_table(results)
    return "\n".join(lines) + "\n"
