#!/usr/bin/env python3
"""Bar chart of a bench/micro.py run: asyncio vs uvloop vs boucle.

    python bench/micro.py --json run.json
    python bench/chart.py run.json micro.png

    python bench/micro.py --png micro.png      # the same, in one step

One group of bars per workload (and a last group for the geometric mean);
each bar is the loop's best time relative to asyncio's on the same workload
(asyncio = 1.00, lower is better).  If asyncio was not part of the run, the
first loop measured is the baseline instead.

matplotlib is an optional dependency (``pip install matplotlib``).  Without
it this script prints a note and exits 0 without writing a chart.
"""

import json
import math
import sys

LOOP_ORDER = ("asyncio", "uvloop", "boucle")
COLORS = {"asyncio": "#9e9e9e", "uvloop": "#4c72b0", "boucle": "#dd8452"}


def _ratios(data):
    """(baseline, loops, rows): rows are (label, {loop: ratio or None})."""
    meta = data["meta"]
    results = data["results"]
    loops = [name for name in LOOP_ORDER
             if meta["loops"].get(name, {}).get("available")]
    loops += [name for name, info in meta["loops"].items()
              if info.get("available") and name not in loops]
    if not loops:
        return None, [], []
    baseline = "asyncio" if "asyncio" in loops else loops[0]
    rows = []
    logs = {name: [] for name in loops}
    for res in results:
        base = res["loops"].get(baseline, {}).get("best")
        ratios = {}
        for name in loops:
            t = res["loops"].get(name, {}).get("best")
            ratios[name] = (t / base) if (t and base) else None
        # Only workloads where every loop passed enter the geometric mean,
        # so all its bars average over the same workloads.
        if all(ratios[name] for name in loops):
            for name in loops:
                logs[name].append(math.log(ratios[name]))
        rows.append((res["label"], ratios))
    if len(results) > 1 and logs[loops[0]]:
        rows.append(("geometric mean",
                     {name: math.exp(sum(v) / len(v)) for name, v in logs.items()}))
    return baseline, loops, rows


def _title(meta, baseline):
    loops = meta["loops"]
    vers = ["%s %s" % (name, loops[name]["version"]) for name in LOOP_ORDER
            if loops.get(name, {}).get("available") and name != "asyncio"]
    date = str(meta.get("date", "")).split(" ")[0]
    line1 = "boucle micro benchmarks: time relative to %s (lower is better)" % baseline
    line2 = "Python %s, %s" % (meta.get("python", "?"), date)
    if vers:
        line2 += " | " + ", ".join(vers)
    line3 = "best of %s, sizes x%g" % (meta.get("repeat"), meta.get("scale", 1))
    la = [x for x in (meta.get("loadavg_start"), meta.get("loadavg_end")) if x is not None]
    if la:
        line3 += ", load average %g-%g on %s cores (shared machine)" % (
            min(la), max(la), meta.get("cpus_usable") or meta.get("cpus"))
    return line1, line2 + "\n" + line3


def write_chart(data, path):
    """Write the PNG for ``data`` (micro.py's JSON, as a dict) to ``path``.

    Returns True if a chart was written, False if matplotlib is missing or
    there is nothing to plot (a note says why, on stderr)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart: matplotlib is not installed, no chart written "
              "(pip install matplotlib)", file=sys.stderr)
        return False

    baseline, loops, rows = _ratios(data)
    if not rows:
        print("chart: no results to plot, no chart written", file=sys.stderr)
        return False

    n = len(rows)
    k = len(loops)
    bar = 0.8 / k
    fig_h = 1.2 + 0.42 * n * max(k, 2) / 2
    fig, ax = plt.subplots(figsize=(9, fig_h), dpi=110)
    top = max([r for _, rs in rows for r in rs.values() if r] + [1.0])
    for j, name in enumerate(loops):
        ys = []
        vals = []
        fails = []
        for i, (_, rs) in enumerate(rows):
            y = i + (j - (k - 1) / 2) * bar
            if rs[name]:
                ys.append(y)
                vals.append(rs[name])
            else:
                fails.append(y)
        bars = ax.barh(ys, vals, height=bar * 0.92, color=COLORS.get(name),
                       label=name, zorder=2)
        if name != baseline:
            for rect, v in zip(bars, vals):
                ax.text(rect.get_width() + top * 0.01,
                        rect.get_y() + rect.get_height() / 2, "%.2f" % v,
                        va="center", ha="left", fontsize=7.5, color="#333333")
        for y in fails:
            ax.text(top * 0.01, y, "FAIL", va="center", ha="left", fontsize=7.5,
                    color="#c00000", fontweight="bold")
    ax.axvline(1.0, color="#555555", linestyle="--", linewidth=0.9, zorder=3)
    ax.set_yticks(range(n))
    ax.set_yticklabels([label for label, _ in rows])
    for tick, (label, _) in zip(ax.get_yticklabels(), rows):
        if label == "geometric mean":
            tick.set_fontweight("bold")
    if len(rows) > 1 and rows[-1][0] == "geometric mean":
        ax.axhline(n - 1.5, color="#bbbbbb", linewidth=0.8)
    ax.set_ylim(n - 0.5, -0.5)        # first workload on top, no empty margins
    ax.set_xlim(0, top * 1.12)
    ax.set_xlabel("time relative to %s (%s = 1.00; lower is better)" % (baseline, baseline))
    ax.set_ylabel("workload")
    ax.grid(axis="x", color="#e5e5e5", zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    title, subtitle = _title(data["meta"], baseline)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11, fontweight="bold")
    ax.set_title(subtitle, fontsize=8, color="#444444", loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1 * 7 / fig_h), ncol=k,
              fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        print("usage: python bench/chart.py RESULTS.json OUT.png\n\n"
              "RESULTS.json is what `bench/micro.py --json FILE` writes.",
              file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    with open(argv[0]) as f:
        data = json.load(f)
    if write_chart(data, argv[1]):
        print("chart: wrote %s" % argv[1], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
