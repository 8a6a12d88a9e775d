// The price card: candles of one symbol with indicator overlays, and markers for the risk
// manager's decisions (arrows) and the fills (circles), loaded from REST, then kept live from the
// stream. Markers sit on the candle the signal was for (its market time), not on the wall-clock
// time of the fill: a replay's fills happen today about candles of 2021.

import { api } from "./api.js";
import { OVERLAYS, createPriceChart, overlayPoints, toBar } from "./charts.js";
import { candleTimeOf, el, toSeconds } from "./format.js";

const HISTORY = 500;

export class PricePanel {
  constructor(lib, container, legend) {
    this.container = container;
    this.view = lib ? createPriceChart(lib, container) : null;
    this.symbol = null;
    this.timeframe = null;
    this.reset();
    legend.replaceChildren(...OVERLAYS.map((o) => el("span", {}, el("i", { style: `background:${o.color}` }), o.label)),
      el("span", { class: "pos" }, "▲ buy"), el("span", { class: "neg" }, "▼ sell"),
      el("span", { style: "color:#f0b429" }, "● fill"), el("span", {}, "• rejected"));
  }

  reset() {
    this.times = []; // bar times, ascending
    this.signalTimes = new Map(); // signal_id -> candle seconds
    this.orderTimes = new Map(); // client_order_id -> candle seconds
    this.decisions = new Map(); // signal_id -> marker
    this.fills = new Map(); // fill key -> marker
  }

  async load(symbol, timeframe) {
    this.symbol = symbol;
    this.timeframe = timeframe;
    this.reset();
    const [market, decisions, fills] = await Promise.all([
      api.get("/candles", { symbol, timeframe, limit: HISTORY }),
      api.get("/decisions", { symbol, limit: HISTORY }),
      api.get("/fills", { symbol, limit: HISTORY }),
    ]);
    const bars = market.candles.map(toBar).filter((b) => Number.isFinite(b.time));
    this.times = bars.map((b) => b.time);
    if (this.view) {
      this.view.candles.setData(bars);
      const series = new Map(OVERLAYS.map((o) => [o.key, []]));
      for (const row of market.indicators || []) {
        for (const [key, point] of overlayPoints(toSeconds(row.candle_time), row.values)) series.get(key).push(point);
      }
      for (const [key, points] of series) this.view.overlays.get(key).setData(points);
      this.view.chart.timeScale().fitContent();
    }
    for (const d of decisions.items.slice().reverse()) this.addDecision(d, toSeconds(candleTimeOf(d)));
    for (const f of fills.items) this.addFill(fillKey(f), f.side, f.client_order_id, f.candle_time, f.filled_at);
    this.redraw();
  }

  /** A `market.candle` message from the stream. */
  onCandle(candle) {
    if (!this.mine(candle)) return;
    const bar = toBar(candle);
    const last = this.times[this.times.length - 1];
    if (last !== undefined && bar.time < last) return; // an older bar than shown: REST has it
    if (bar.time !== last) this.times.push(bar.time);
    if (this.view) this.view.candles.update(bar);
    this.redraw(false);
  }

  /** An `analysis.indicators` message. */
  onIndicators(snapshot) {
    if (!this.mine(snapshot) || !this.view) return;
    const time = toSeconds(snapshot.candle_time);
    const last = this.times[this.times.length - 1];
    if (last !== undefined && time < last) return;
    for (const [key, point] of overlayPoints(time, snapshot.indicators)) this.view.overlays.get(key).update(point);
  }

  onSignal(signal) {
    if (signal.symbol === this.symbol) this.signalTimes.set(String(signal.message_id), toSeconds(signal.candle_time));
  }

  /** A `trade.order` message: the risk manager approved a signal. */
  onOrder(order) {
    if (order.symbol !== this.symbol) return;
    const time = this.signalTimes.get(String(order.signal_id)) ?? toSeconds(order.reference_time);
    this.orderTimes.set(order.client_order_id, time);
    this.addDecision({ signal_id: order.signal_id, side: order.side, decision: "APPROVED", strategy_id: order.strategy_id }, time);
    this.redraw();
  }

  /** A `risk.rejection` message. */
  onRejection(rejection) {
    if (rejection.symbol !== this.symbol) return;
    const time = this.signalTimes.get(String(rejection.signal_id));
    this.addDecision({ ...rejection, decision: "REJECTED" }, time);
    this.redraw();
  }

  /** An `execution.report` message: a fill when last_fill_quantity > 0. */
  onReport(report) {
    if (report.symbol !== this.symbol || !(Number(report.last_fill_quantity) > 0)) return;
    const key = `${report.client_order_id}:${report.trade_id ?? report.cumulative_filled_quantity}`;
    this.addFill(key, report.side, report.client_order_id, null, report.event_time);
    this.redraw();
  }

  addDecision(d, time) {
    if (!Number.isFinite(time) || d.side === "HOLD") return;
    if (d.client_order_id) this.orderTimes.set(d.client_order_id, time);
    const approved = d.decision === "APPROVED";
    const buy = d.side === "BUY";
    this.decisions.set(String(d.signal_id), {
      id: `decision:${d.signal_id}`, time,
      position: buy ? "belowBar" : "aboveBar",
      shape: approved ? (buy ? "arrowUp" : "arrowDown") : "circle",
      color: approved ? (buy ? "#26a69a" : "#ef5350") : "#6b7785",
      size: approved ? 1 : 0.5,
    });
  }

  addFill(key, side, clientOrderId, candleTime, wallTime) {
    const time = toSeconds(candleTime) || this.orderTimes.get(clientOrderId) || toSeconds(wallTime);
    if (!Number.isFinite(time)) return;
    this.fills.set(key, {
      id: `fill:${key}`, time, position: side === "BUY" ? "belowBar" : "aboveBar", shape: "circle",
      color: "#f0b429", size: 1,
    });
  }

  /** Put every marker on the bar it belongs to and hand them to the chart, in time order. */
  redraw(markersChanged = true) {
    const placed = [];
    for (const marker of [...this.decisions.values(), ...this.fills.values()]) {
      const time = this.barAt(marker.time);
      if (time !== null) placed.push({ ...marker, time });
    }
    placed.sort((a, b) => a.time - b.time);
    if (this.view && markersChanged) this.view.markers.setMarkers(placed);
    // What the chart was given, for people reading the DOM and for the browser tests.
    document.getElementById("chart-empty").hidden = this.times.length > 0;
    const data = this.container.dataset;
    data.candles = String(this.view ? this.view.candles.data().length : this.times.length);
    data.fillMarkers = String(placed.filter((m) => m.id.startsWith("fill:")).length);
    data.signalMarkers = String(placed.filter((m) => m.id.startsWith("decision:")).length);
  }

  /** The time of the bar containing `time` (the last bar for anything newer); null if before all. */
  barAt(time) {
    const times = this.times;
    if (!times.length || time < times[0]) return null;
    let lo = 0;
    let hi = times.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (times[mid] <= time) lo = mid;
      else hi = mid - 1;
    }
    return times[lo];
  }

  mine(message) {
    return message.symbol === this.symbol && (!this.timeframe || message.timeframe === this.timeframe);
  }
}

function fillKey(fill) {
  return `${fill.client_order_id}:${fill.trade_id}`;
}
