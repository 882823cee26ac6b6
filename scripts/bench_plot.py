#!/usr/bin/env python3
"""Draws the lag distributions from scripts/bench's CSV: bench_plot.py LAGS.csv OUT.png [CLOCK]

CLOCK: the clock the lags were read from ("TCG wall", the default, or "icount")."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
names = []
for r in rows:
    if r["scenario"] not in names:
        names.append(r["scenario"])
data = [[float(r["lag_ms"]) for r in rows if r["scenario"] == n] for n in names]
fig, ax = plt.subplots(figsize=(9, 4.5))
ax.boxplot(data, orientation="horizontal", showfliers=True)
ax.set_yticks(range(1, len(names) + 1))
ax.set_yticklabels(names)
for i, d in enumerate(data, start=1):
    ax.scatter(d, [i] * len(d), s=14, alpha=0.6)
ax.set_xscale("log")
ax.set_xlabel("lag from NVMe namespace message to the volume's init, ms (log scale)")
clock = sys.argv[3] if len(sys.argv) > 3 else "TCG wall"
ax.set_title(f"Hot-plugged root volume: time to the real init (QEMU, {clock})")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
