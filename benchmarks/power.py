"""How small a paired difference a benchmark's seeds can detect, and how many seeds a given difference needs.

For each task and method, the runs in `raw/full/` are paired with `none` by seed, as in the tuned table. With `n`
pairs whose differences have standard deviation `s`, a two-sided paired t-test at level 0.05 rejects "no
difference" with probability `power` when the true difference is `delta`; its statistic follows the noncentral t
distribution with `n - 1` degrees of freedom and noncentrality `delta * sqrt(n) / s`. We report the smallest
`delta` detected with power 0.8 at the observed `s`, and the fewest seeds that would detect a 1-point difference.
Both take the observed `s` as the truth, which five seeds estimate loosely: read them as orders of magnitude.

    python -m benchmarks.power benchmarks/glue_tuned_cpu        # writes power.json and power.md there
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from scipy import optimize, stats

from .common import write_outputs

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000


def paired_t_power(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Probability that a two-sided paired t-test over `n` pairs rejects at `alpha` when the true mean difference is
    `delta` and the differences' standard deviation is `sd`. The lower tail is taken as the upper tail of the mirrored
    distribution: scipy's `nct.cdf` returns NaN there for few pairs and a large noncentrality; `nct.sf` gives 0."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    noncentrality = delta * math.sqrt(n) / sd
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.sf(critical, df, -noncentrality))


def detectable_difference(sd: float, n: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest true difference that `n` pairs detect with probability `power`: the root of the power curve."""
    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 pairs, got {n}")
    high = sd
    while paired_t_power(high, sd, n, alpha) < power:
        high *= 2
    return float(optimize.brentq(lambda delta: paired_t_power(delta, sd, n, alpha) - power, 0.0, high))


def seeds_needed(delta: float, sd: float, power: float = POWER, alpha: float = ALPHA) -> int:
    """The fewest pairs that detect a true difference `delta` with probability `power` (at most MAX_SEEDS)."""
    n = 2
    while paired_t_power(delta, sd, n, alpha) < power:
        n += 1
        if n > MAX_SEEDS:
            raise ValueError(f"more than {MAX_SEEDS} seeds needed for a difference of {delta} at sd {sd}")
    return n


def read_scores(raw_dir: Path) -> dict[tuple[str, str], dict[int, float]]:
    """(task, method) -> seed -> score, from the runs' JSON files (selection runs, which have no method, are left)."""
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for path in sorted(raw_dir.glob("*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        if run.get("method") and run.get("seed") is not None and "_select_" not in run["name"]:
            scores.setdefault((run["task"], run["method"]), {})[int(run["seed"])] = float(run["score"])
    return scores


def power_rows(scores: dict[tuple[str, str], dict[int, float]], baseline: str = "none") -> list[dict[str, Any]]:
    """Each method's paired spread against `baseline`, the difference its seeds detect and the seeds 1 point needs."""
    rows = []
    for (task, method), by_seed in sorted(scores.items()):
        reference = scores.get((task, baseline))
        seeds = sorted(set(by_seed) & set(reference or {}))
        if method == baseline or len(seeds) < 2:
            continue
        differences = [by_seed[seed] - reference[seed] for seed in seeds]
        sd = statistics.stdev(differences)
        rows.append(
            {
                "task": task,
                "method": method,
                "pairs": len(seeds),
                "mean_difference": statistics.mean(differences),
                "sd_difference": sd,
                "detectable_difference": detectable_difference(sd, len(seeds)),
                "seeds_for_1_point": seeds_needed(1.0, sd),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "## Power of the paired comparison to `none`",
        "",
        f"Two-sided paired t-test at level {ALPHA}, power {POWER}, taking each pair's observed spread (sd of the "
        "paired differences, score x 100) as the truth.",
        "",
        "| task | method | pairs | mean difference | sd of differences | detectable difference | seeds for 1 point |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['task']} | {row['method']} | {row['pairs']} | {row['mean_difference']:+.2f} | "
            f"{row['sd_difference']:.2f} | {row['detectable_difference']:.2f} | {row['seeds_for_1_point']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "benchmark_dir", type=Path, help="A benchmark folder with raw/full/*.json, e.g. benchmarks/glue_tuned_cpu."
    )
    args = parser.parse_args(argv)
    raw_dir = args.benchmark_dir / "raw" / "full"
    if not raw_dir.is_dir():
        parser.error(f"benchmark_dir {args.benchmark_dir}: no raw/full/ folder of runs in it")
    rows = power_rows(read_scores(raw_dir))
    table = markdown(rows)
    write_outputs(args.benchmark_dir, "power", {"alpha": ALPHA, "power": POWER, "rows": rows}, table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
