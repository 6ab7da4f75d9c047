"""``reproduce bench-cpu``: the CPU benchmarks, natively and as an AVX2-only CPU runs them.

Each unit is one ``keypoint-wm bench`` command that runs alone with every core (a timing is
never taken beside another unit): the latent wrapper against the bare environment (1 and 8
envs), with an untrained paper-size model and with the model shipped in the package
(``--run default``, judged against :data:`DEFAULT_BARS`), the training step of
``basketball-cpu`` and of the paper-size ``dmcs`` preset (fast path against fp32 eager), and
the collector against a plain dm_control loop; each natively and with the kernels capped at
AVX2 (:data:`keypoint_wm.benchmark.AVX2_CAP`). Figures from different machines are different
rows, never pooled: a unit's record names its CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keypoint_wm.bundled import DEFAULT
from keypoint_wm.reproduce.identity import weights_hash
from keypoint_wm.reproduce.pages import header, units_table
from keypoint_wm.reproduce.protocol import OUT, Protocol, Unit, UnitResult, read_json

__all__ = ["DEFAULT_BARS", "protocol"]


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


DEFAULT_WRAPPER = ("bench", "wrapper", "--quiet", "--run", DEFAULT)
"""The latent wrapper with the model shipped in the package."""

BENCHES: dict[str, tuple[str, ...]] = {
    "wrapper": ("bench", "wrapper", "--quiet"),
    "train-basketball-cpu": _train_bench("basketball-cpu", steps=20, warmup=3),
    "train-dmcs": _train_bench("dmcs", steps=2, warmup=1),
    "collect": ("bench", "collect"),
    "wrapper-default": DEFAULT_WRAPPER,
}
"""The benchmarks, each a ``keypoint-wm`` command (``--json`` added per unit)."""

SMOKE: dict[str, tuple[str, ...]] = {
    "train-basketball-cpu": _train_bench("basketball-cpu", steps=1, warmup=0),
    "wrapper-default": (*DEFAULT_WRAPPER, "--steps", "2", "--envs", "2"),
}

DEFAULT_BARS = {1: 0.8, 8: 0.9}
"""The shipped model's targets on an AVX2-only CPU: ``bare_vs_wrapped`` (t_bare / t_wrapped)
at least 0.8 with 1 env and 0.9 with 8 envs, judged on ``wrapper-default-avx2``."""


def _default_uses(out: Path) -> dict[str, Any]:
    """The shipped world model a unit timed: its step and weight hash."""
    from keypoint_wm.bundled import resolve_run

    return {"world_model": weights_hash(resolve_run(DEFAULT))}


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
        uses=_default_uses if argv[: len(DEFAULT_WRAPPER)] == DEFAULT_WRAPPER else None,
        env=env,
        exclusive=True,
    )


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: two short benchmarks (a training step, the shipped model's
    wrapper), native and capped."""
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
    if "wrapper-default" in benches:
        lines += _default_bars(results)
    lines += units_table(results)
    return "\n".join(lines) + "\n"


def _default_bars(results: dict[str, UnitResult]) -> list[str]:
    """The shipped model's wrapper against :data:`DEFAULT_BARS`: met or not, per figure."""
    bars = " and ".join(
        f"at least {bar} with {n} env{'s' if n > 1 else ''}" for n, bar in DEFAULT_BARS.items()
    )
    lines = [
        "## The shipped default model's wrapper",
        "",
        "`bench wrapper --run default` times the latent wrapper with the world model shipped in "
        f"the package. Its targets on an AVX2-only CPU: bare_vs_wrapped (t_bare / t_wrapped) {bars}, "
        "judged on the AVX2-capped row (at this machine's clock); the native row is shown beside "
        "it.",
        "",
        "| ISA | model | " + " | ".join(f"{n} env{'s' if n > 1 else ''} (bar {bar})"
                                       for n, bar in DEFAULT_BARS.items()) + " |",
        "|---|---|" + "---|" * len(DEFAULT_BARS),
    ]  # fmt: skip
    for isa in ("avx2", "native"):
        result = results.get(f"wrapper-default-{isa}")
        if result is None:
            lines.append(f"| {isa} | not run yet |" + " |" * len(DEFAULT_BARS))
            continue
        model = result.figures.get("model", {})
        cells = [f"{model.get('run')} (weights {model.get('weights')})"]
        for n, bar in DEFAULT_BARS.items():
            ratio = result.figures.get("ratios", {}).get(f"bare_vs_wrapped_{n}env")
            if ratio is None:
                cells.append(f"not measured ({result.figures.get('num_envs')} envs)")
            elif isa == "avx2":
                cells.append(f"{ratio:.2f}: {'meets' if ratio >= bar else 'misses'} it")
            else:
                cells.append(f"{ratio:.2f}")
        lines.append(f"| {isa} | " + " | ".join(cells) + " |")
    return [*lines, ""]
