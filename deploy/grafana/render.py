"""Draws the Grafana dashboard (scopegate.json) as a PNG from a live Prometheus.

Each panel's own PromQL is evaluated through Prometheus' HTTP API (query_range over the given
window, the dashboard's variables filled in as Grafana would: every job, and `$__rate_interval`
from the scrape interval), and drawn where the dashboard's grid puts it: rows as headings, time
series with their legend and last values (stacked where the panel stacks), stats as the last
value in its threshold colour. What Prometheus does not have is drawn as "No data", as Grafana
shows it. Only the parts of the panel model the dashboard uses are read.

Usage: render.py DASHBOARD_JSON PROMETHEUS_URL START END SCRAPE_SECONDS OUT_PNG
"""

import json
import math
import sys
import urllib.parse
import urllib.request
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

# Grafana's dark theme and its classic palette, so the picture reads like the real thing.
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a", "#447ebc", "#c15c17"]
NAMED_COLOURS = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c", "yellow": "#fade2a"}
# One grid unit: Grafana's rows are 30 px high, its 24 columns share the width.
UNIT_PX = 30
WIDTH_PX = 1600
HEADER_PX = 54
DPI = 100


def promql(expr, rate_interval):
    return expr.replace("$__rate_interval", rate_interval).replace('"$job"', '".*"')


def query_range(prometheus, expr, start, end, step):
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}") as answer:
        result = json.load(answer)
    if result.get("status") != "success":
        raise SystemExit(f"Prometheus refused {expr}: {result}")
    return result["data"]["result"]


def legend(fmt, labels):
    if not fmt:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    out = fmt
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    while "{{" in out:  # a label the series does not carry renders empty, as in Grafana
        head, _, rest = out.partition("{{")
        out = head + rest.partition("}}")[2]
    return out.strip() or "value"


def fmt_value(value, unit):
    if value is None or math.isnan(value):
        return "—"
    if unit == "reqps":
        return f"{value:.2f} req/s" if value < 10 else f"{value:.1f} req/s"
    if unit == "s":
        magnitude = abs(value)
        for size, name in ((365 * 86400, "year"), (86400, "day"), (3600, "hour"), (60, "min")):
            if magnitude >= size:
                return f"{value / size:.2f} {name}"
        if magnitude >= 1 or magnitude == 0:
            return f"{value:.2f} s"
        if magnitude >= 1e-3:
            return f"{value * 1e3:.2f} ms"
        return f"{value * 1e6:.0f} µs"
    return f"{value:.3g}"


def threshold_colour(value, steps):
    colour = TEXT
    for step in steps:
        if step.get("value") is None or value >= step["value"]:
            colour = NAMED_COLOURS.get(step["color"], step["color"])
    return colour


def box(fig, x, y, w, h):
    """The panel's rectangle in figure coordinates (grid units in, fractions out)."""
    height_px = fig.get_figheight() * DPI
    left = x / 24 + 0.003
    width = w / 24 - 0.006
    top = 1 - (HEADER_PX + y * UNIT_PX) / height_px
    height = h * UNIT_PX / height_px - 0.006
    return left, top - height, width, height


def frame(fig, panel):
    left, bottom, width, height = box(fig, **panel["gridPos"])
    fig.patches.append(FancyBboxPatch((left, bottom), width, height, transform=fig.transFigure,
                                      boxstyle="round,pad=0,rounding_size=0.002",
                                      facecolor=PANEL, edgecolor=BORDER, linewidth=0.8,
                                      zorder=-1))
    fig.text(left + 0.006, bottom + height - 0.004, panel["title"], color=TEXT, fontsize=10,
             fontweight="bold", va="top", ha="left")
    return left, bottom, width, height


def no_data(fig, left, bottom, width, height):
    fig.text(left + width / 2, bottom + height / 2, "No data", color=MUTED, fontsize=12,
             ha="center", va="center")


def series_of(panel, prometheus, start, end, step, rate_interval):
    found = []
    for target in panel.get("targets", []):
        expr = promql(target["expr"], rate_interval)
        for result in query_range(prometheus, expr, start, end, step):
            points = [(float(t), float(v)) for t, v in result["values"]]
            found.append((legend(target.get("legendFormat"), result["metric"]), points))
    return found


def draw_timeseries(fig, panel, series, start, end, step):
    left, bottom, width, height = frame(fig, panel)
    if not series:
        no_data(fig, left, bottom, width, height)
        return
    unit = panel["fieldConfig"]["defaults"].get("unit", "")
    stacked = panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    # The plot on the left, the legend table (name, last value) on the right, as the panel's
    # legend options say.
    title_h = 0.022
    axes = fig.add_axes([left + 0.035, bottom + 0.02, width * 0.58 - 0.035,
                         height - title_h - 0.026])
    axes.set_facecolor(PANEL)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.grid(color=BORDER, linewidth=0.6)
    axes.tick_params(colors=MUTED, labelsize=7, length=0)
    times = [start + i * step for i in range(int((end - start) / step) + 1)]
    stamps = [datetime.fromtimestamp(t) for t in times]
    below = [0.0] * len(times)
    rows = []
    for index, (name, points) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        at = dict(points)
        values = [at.get(t, math.nan) for t in times]
        last = next((v for v in reversed(values) if not math.isnan(v)), math.nan)
        if stacked:
            top = [b + (0 if math.isnan(v) else v) for b, v in zip(below, values)]
            axes.fill_between(stamps, below, top, color=colour, alpha=0.1, linewidth=0)
            axes.plot(stamps, top, color=colour, linewidth=1)
            below = top
        else:
            axes.fill_between(stamps, 0, [0 if math.isnan(v) else v for v in values],
                              where=[not math.isnan(v) for v in values], color=colour,
                              alpha=0.1, linewidth=0)
            axes.plot(stamps, values, color=colour, linewidth=1)
        rows.append((colour, name, fmt_value(last, unit), last))
    axes.set_xlim(stamps[0], stamps[-1])
    # A panel of zeros gets Grafana's 0 to 1 axis rather than matplotlib's tiny one.
    peak = max((v for _, points in series for _, v in points if not math.isnan(v)), default=0)
    axes.set_ylim(0, None if peak > 0 else 1)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    axes.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=5))
    axes.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: fmt_value(v, unit).replace(" req/s", "")))
    # The legend table, largest last value first (Grafana's sort by "Last"), as many rows as fit.
    rows.sort(key=lambda row: -row[3] if not math.isnan(row[3]) else math.inf)
    x = left + width * 0.60
    top = bottom + height - title_h - 0.012
    line = 0.0125
    fig.text(x + width * 0.30, top, "Last *", color=MUTED, fontsize=7, ha="left", va="top")
    fit = int((height - title_h - 0.02) / line) - 1
    for i, (colour, name, last, _) in enumerate(rows[:fit]):
        y = top - (i + 1) * line
        fig.text(x, y, "▬", color=colour, fontsize=8, va="top")
        fig.text(x + 0.012, y, name[:34], color=TEXT, fontsize=7, va="top")
        fig.text(x + width * 0.30, y, last, color=TEXT, fontsize=7, va="top")
    if len(rows) > fit:
        fig.text(x, top - (fit + 1) * line, f"+{len(rows) - fit} more", color=MUTED,
                 fontsize=7, va="top")


def draw_stat(fig, panel, series):
    left, bottom, width, height = frame(fig, panel)
    last = [next((v for _, v in reversed(points) if not math.isnan(v)), math.nan)
            for _, points in series]
    if not last:
        no_data(fig, left, bottom, width, height)
        return
    defaults = panel["fieldConfig"]["defaults"]
    value = last[0]
    colour = threshold_colour(value, defaults.get("thresholds", {}).get("steps", []))
    fig.text(left + width / 2, bottom + height / 2 - 0.008, fmt_value(value, defaults.get("unit")),
             color=colour, fontsize=30, fontweight="bold", ha="center", va="center")


def main():
    dashboard_file, prometheus, start, end, scrape, out = sys.argv[1:7]
    start, end, scrape = float(start), float(end), float(scrape)
    with open(dashboard_file) as f:
        dashboard = json.load(f)
    # Grafana's $__rate_interval: four scrape intervals at least, here also the step.
    step = scrape
    rate_interval = f"{int(4 * scrape)}s"
    start = math.floor(start / step) * step
    end = math.floor(end / step) * step
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height_px = HEADER_PX + rows * UNIT_PX + 8
    fig = plt.figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI, facecolor=BACKGROUND)
    fig.text(0.006, 1 - 14 / height_px, dashboard["title"], color=TEXT, fontsize=14,
             fontweight="bold", va="top")
    window = (f"{datetime.fromtimestamp(start):%Y-%m-%d %H:%M:%S} to "
              f"{datetime.fromtimestamp(end):%H:%M:%S} · job = All · "
              f"rate interval {rate_interval} · scopegate demo")
    fig.text(0.994, 1 - 16 / height_px, window, color=MUTED, fontsize=9, va="top", ha="right")
    for panel in panels:
        kind = panel["type"]
        if kind == "row":
            left, bottom, width, height = box(fig, **panel["gridPos"])
            fig.text(left + 0.002, bottom + height / 2, "⌄ " + panel["title"], color=TEXT,
                     fontsize=11, fontweight="bold", va="center")
            continue
        series = series_of(panel, prometheus, start, end, step, rate_interval)
        if kind == "timeseries":
            draw_timeseries(fig, panel, series, start, end, step)
        elif kind == "stat":
            draw_stat(fig, panel, series)
        else:
            raise SystemExit(f"panel type {kind} ({panel['title']}) is not drawn by this script")
    fig.savefig(out, dpi=DPI, facecolor=BACKGROUND)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
