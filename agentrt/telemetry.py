"""Run telemetry: per-frame traces capture -> actuation, rates, over-budget cycles, drops, restarts.

Nodes report counters and traces over the supervisor's control socket (see
`agentrt.nodehost`); `TelemetryCollector` keeps them, renders the live status
line and writes the report at exit::

    runs/<name>-<time>/report.json   figures (the field names below)
    runs/<name>-<time>/latency.png   end-to-end latency over time and its distribution

A trace is ``[("capture", t), (node, t_send), ..., (last node, t_recv)]``; a
hop is one step between consecutive nodes (send -> next send or receipt).

Counters fall in three groups, totalled per node and per run (`category`):

- **dropped**: good messages not used: latest-only skips (``in.*.skipped``),
  lossless gaps (``in.*.gaps``), shared-memory frames overwritten before they
  were read (``in.*.torn``), publisher drops (``out.*.dropped``), and a node's
  own ``dropped.*`` counters;
- **bad**: messages refused as invalid: malformed (``in.*.bad``), of another
  kind than the input takes (``in.*.wrong_kind``), a node's own ``bad.*``;
- **refused**: CURVE handshakes refused (``out.*.refused`` on the server,
  ``in.*.refused`` on the client).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.figures import machine_info, percentile
from agentrt.messages import Hop, Telemetry, now_ns

__all__ = ["TelemetryCollector", "NodeFigures", "parse_trace", "category", "CATEGORIES"]

log = logging.getLogger(__name__)

MAX_TRACES = 200_000

CATEGORIES = ("dropped", "bad", "refused")
_HOST_METRICS = ("ticks", "over_budget", "missed_ticks", "target_hz", "held_unarmed", "pid")
_WIRE_COUNTERS = {"skipped": "dropped", "gaps": "dropped", "torn": "dropped", "dropped": "dropped",
                  "bad": "bad", "wrong_kind": "bad", "refused": "refused"}


def category(key: str) -> str:
    """Which of `CATEGORIES` a telemetry counter adds to ("" for none: rates, ticks, received, ...)."""
    head, _, rest = key.partition(".")
    if head in ("in", "out") and rest:
        return _WIRE_COUNTERS.get(key.rsplit(".", 1)[1], "")
    if head in ("bad", "dropped") and rest:  # a node's own (`NodeStats.counters`)
        return head
    return ""


def parse_trace(metrics: dict[str, float]) -> list[Hop]:
    """The trace in a trace Telemetry message (keys ``"<index>:<name>"``)."""
    points = []
    for key, value in metrics.items():
        index, sep, name = key.partition(":")
        if sep and index.isdigit():
            points.append((int(index), name, int(value)))
    return [(name, t) for _, name, t in sorted(points)]


@dataclass
class NodeFigures:
    """What one node reported, accumulated over its restarts (one entry per process id)."""

    name: str
    state: str = "starting"
    restarts: int = 0
    target_hz: float = 0.0
    per_pid: dict[int, dict[str, Any]] = field(default_factory=dict)  # pid -> first/last samples

    def update(self, t_ns: int, metrics: dict[str, float]) -> None:
        pid = int(metrics.get("pid", 0))
        self.target_hz = metrics.get("target_hz", self.target_hz)
        entry = self.per_pid.setdefault(pid, {"first_t": t_ns, "first_ticks": metrics.get("ticks", 0.0)})
        entry["last_t"] = t_ns
        entry["last"] = dict(metrics)

    def total(self, key: str) -> float:
        return sum(e["last"].get(key, 0.0) for e in self.per_pid.values())

    def total_prefix(self, suffixes: tuple[str, ...]) -> float:
        return sum(v for e in self.per_pid.values() for k, v in e["last"].items() if k.endswith(suffixes))

    def counted(self) -> dict[str, float]:
        """Every non-zero counter of `CATEGORIES`, summed over the node's processes."""
        totals: dict[str, float] = {}
        for entry in self.per_pid.values():
            for key, value in entry["last"].items():
                if value and category(key):
                    totals[key] = totals.get(key, 0.0) + value
        return dict(sorted(totals.items()))

    def own_counters(self) -> dict[str, float]:
        """What the node counted itself (``stats.counters``), summed over its processes."""
        totals: dict[str, float] = {}
        for entry in self.per_pid.values():
            for key, value in entry["last"].items():
                if key not in _HOST_METRICS and not key.startswith(("in.", "out.")):
                    totals[key] = totals.get(key, 0.0) + value
        return dict(sorted(totals.items()))

    def total_of(self, wanted: str) -> float:
        """The node's total of one category ("dropped", "bad" or "refused")."""
        return sum(value for key, value in self.counted().items() if category(key) == wanted)

    def rate_hz(self) -> float:
        ticks = sum(e["last"].get("ticks", 0.0) - e["first_ticks"] for e in self.per_pid.values())
        seconds = sum((e["last_t"] - e["first_t"]) / 1e9 for e in self.per_pid.values())
        return ticks / seconds if seconds > 0 else 0.0


class TelemetryCollector:
    """Accumulates what nodes report during one run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started_ns = now_ns()
        self.nodes: dict[str, NodeFigures] = {}
        self.traces: deque[list[Hop]] = deque(maxlen=MAX_TRACES)
        self.events: list[str] = []
        self._warm: threading.Thread | None = None

    def node(self, name: str) -> NodeFigures:
        return self.nodes.setdefault(name, NodeFigures(name))

    def on_telemetry(self, message: Telemetry) -> None:
        if message.metrics.get("trace"):
            trace = parse_trace(message.metrics)
            if len(trace) >= 2:
                self.traces.append(trace)
        else:
            self.node(message.node).update(message.t_ns, message.metrics)

    def on_state(self, node: str, state: str) -> None:
        self.node(node).state = state

    def on_restart(self, node: str, reason: str) -> None:
        self.node(node).restarts += 1
        self.events.append(f"{(now_ns() - self.started_ns) / 1e9:.1f}s restart {node}: {reason}")

    # ---- figures -------------------------------------------------------------------------------

    def latencies_ms(self, last: int | None = None) -> list[float]:
        traces = list(self.traces)[-last:] if last else self.traces
        return [(t[-1][1] - t[0][1]) / 1e6 for t in traces]

    def hops_us(self) -> dict[str, list[float]]:
        hops: dict[str, list[float]] = {}
        for trace in self.traces:
            for (a, ta), (b, tb) in zip(trace, trace[1:], strict=False):
                if a != "capture":
                    hops.setdefault(f"{a}->{b}", []).append((tb - ta) / 1e3)
        return hops

    def summary(self) -> dict[str, Any]:
        timed = [n for n in self.nodes.values() if n.target_hz > 0]
        ticks = sum(n.total("ticks") for n in timed)
        over = sum(n.total("over_budget") for n in timed)
        latencies = self.latencies_ms()
        all_hops = [v for values in self.hops_us().values() for v in values]
        return {
            "name": self.name,
            "duration_s": (now_ns() - self.started_ns) / 1e9,
            "traces": len(latencies),
            "latency_ms": _stats(latencies),
            "hop_us": _stats(all_hops),
            "hops_us": {hop: _stats(values) for hop, values in self.hops_us().items()},
            "over_budget_share": over / ticks if ticks else 0.0,
            **{wanted: self.total(wanted) for wanted in CATEGORIES},
            "restarts": sum(n.restarts for n in self.nodes.values()),
            "nodes": {
                n.name: {
                    "state": n.state, "restarts": n.restarts, "target_hz": n.target_hz,
                    "rate_hz": n.rate_hz(), "ticks": n.total("ticks"), "over_budget": n.total("over_budget"),
                    "missed_ticks": n.total("missed_ticks"),
                    **{wanted: n.total_of(wanted) for wanted in CATEGORIES},
                    "counts": n.counted(),  # which counter: {"in.frames.bad": 20, ...}
                    "node_counters": n.own_counters(),  # everything the node counted itself
                    "held_unarmed": n.total("held_unarmed"),
                    "received": n.total_prefix((".received",)), "sent": n.total_prefix((".sent",)),
                }
                for n in self.nodes.values()
            },
            "events": self.events[-50:],
        }

    def total(self, wanted: str) -> float:
        """The run's total of one category ("dropped", "bad" or "refused"), over every node."""
        return sum(n.total_of(wanted) for n in self.nodes.values())

    def status_line(self) -> str:
        parts = [f"{(now_ns() - self.started_ns) / 1e9:6.1f}s"]
        for n in self.nodes.values():
            if n.target_hz > 0:
                parts.append(f"{n.name} {n.rate_hz():.1f}/{n.target_hz:g} Hz")
        recent = self.latencies_ms(last=500)
        if recent:
            parts.append(f"e2e p50 {percentile(recent, 50):.2f} ms p99 {percentile(recent, 99):.2f} ms")
        timed_ticks = sum(n.total("ticks") for n in self.nodes.values() if n.target_hz > 0)
        over = sum(n.total("over_budget") for n in self.nodes.values() if n.target_hz > 0)
        if timed_ticks:
            parts.append(f"over budget {100 * over / timed_ticks:.1f}%")
        parts.append(f"dropped {self.total('dropped'):.0f}")
        parts.append(f"bad {self.total('bad'):.0f}")
        refused = self.total("refused")
        if refused:  # only runs across hosts have CURVE
            parts.append(f"refused {refused:.0f}")
        parts.append(f"restarts {sum(n.restarts for n in self.nodes.values())}")
        parts.append(" ".join(f"{n.name}:{n.state}" for n in self.nodes.values()))
        return "  ".join(parts)

    def count_lines(self) -> list[str]:
        """One line per node that dropped, refused or was refused anything: which counters, how many."""
        lines = []
        for n in self.nodes.values():
            counted = n.counted()
            if counted:
                totals = ", ".join(f"{wanted} {n.total_of(wanted):.0f}" for wanted in CATEGORIES if n.total_of(wanted))
                detail = ", ".join(f"{key} {value:.0f}" for key, value in counted.items())
                lines.append(f"{n.name}: {totals} ({detail})")
        return lines

    # ---- report --------------------------------------------------------------------------------

    def prepare_report(self) -> None:
        """Import the plotting library in the background now, so writing the report at exit is quick.

        matplotlib takes about a second to import on a busy 2-core machine; paid during the run
        it does not delay the exit after Ctrl-C.
        """
        if self._warm is None:
            self._warm = threading.Thread(target=_import_pyplot, name="report-warm-up", daemon=True)
            self._warm.start()

    def write_report(self, directory: str | Path) -> tuple[Path, Path | None]:
        """Write report.json, traces.jsonl (per-frame hop timestamps) and latency.png; the last two need traces."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        summary = self.summary()
        summary["machine"] = machine_info()
        if self.traces:
            # Every frame's trace, hop by hop: [[stage, CLOCK_MONOTONIC ns], ...] per line.
            traces_path = out / "traces.jsonl"
            with traces_path.open("w") as traces_file:
                for trace in self.traces:
                    traces_file.write(json.dumps([[name, int(t)] for name, t in trace]) + "\n")
            summary["traces_file"] = traces_path.name
        json_path = out / "report.json"
        json_path.write_text(json.dumps(summary, indent=2, default=float) + "\n")
        png_path = self._plot(out / "latency.png") if self.traces else None
        return json_path, png_path

    def _plot(self, path: Path) -> Path:
        if self._warm is not None:
            self._warm.join()
        plt = _import_pyplot()
        from matplotlib.ticker import FuncFormatter

        t0 = self.traces[0][0][1]
        times = [(t[-1][1] - t0) / 1e9 for t in self.traces]
        latencies = self.latencies_ms()
        fig, (over_time, hist) = plt.subplots(1, 2, figsize=(11, 4))
        over_time.plot(times, latencies, ".", markersize=2)
        over_time.set_xlabel("time (s)")
        over_time.set_ylabel("capture -> actuation (ms)")
        over_time.set_title(f"{self.name}: latency over time")
        hist.hist(latencies, bins=80, log=True)
        # plain numbers on the log axis: the default 10^n labels go through mathtext, the slow part of the plot
        hist.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        hist.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        hist.set_xlabel("capture -> actuation (ms)")
        hist.set_ylabel("frames (log)")
        for q, style in ((50, "--"), (99, ":")):
            value = percentile(latencies, q)
            hist.axvline(value, color="k", linestyle=style, linewidth=1, label=f"p{q} {value:.2f} ms")
        hist.legend(loc="upper right", fontsize=8)
        hist.set_title(f"distribution ({len(latencies)} frames)")
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.22)  # tight_layout: 2x slower
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _import_pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.backends.backend_agg  # noqa: F401  (loaded by the first figure otherwise)
    import matplotlib.pyplot as plt
    from PIL import Image

    Image.preinit()  # the image plugins savefig would load
    return plt


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": max(values)}
