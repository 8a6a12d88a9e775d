// Charts with TradingView's lightweight-charts (npm, built into ../vendor by scripts/build-console).
// Loaded dynamically: without the built library the rest of the console still works and the
// chart area says what to run.

import { toSeconds } from "./format.js";

let library = null;

/** The chart library, or null (with the reason shown in `note`) when it was not built. */
export async function loadLibrary(note) {
  if (library) return library;
  try {
    library = await import("../vendor/lightweight-charts.mjs");
  } catch (error) {
    note.hidden = false;
    note.textContent = "Charts unavailable: the chart library is not built on this server (run scripts/build-console).";
    console.error("lightweight-charts failed to load", error);
    return null;
  }
  return library;
}

const THEME = {
  layout: { background: { color: "transparent" }, textColor: "#8a98a8", fontSize: 11 },
  grid: { vertLines: { color: "#1f2a35" }, horzLines: { color: "#1f2a35" } },
  rightPriceScale: { borderColor: "#2a3642" },
  timeScale: { borderColor: "#2a3642", timeVisible: true, secondsVisible: false },
  crosshair: { mode: 0 },
  autoSize: true,
};

// Overlays drawn on the price: the indicators the built-in strategies read.
export const OVERLAYS = [
  { key: "bb_upper", label: "BB upper", color: "#5c6bc0" },
  { key: "bb_middle", label: "BB mid", color: "#7e57c2" },
  { key: "bb_lower", label: "BB lower", color: "#5c6bc0" },
  { key: "sma_fast", label: "SMA fast", color: "#f0b429" },
  { key: "sma_slow", label: "SMA slow", color: "#ff7043" },
];

export function createPriceChart(lib, container) {
  const chart = lib.createChart(container, THEME);
  const candles = chart.addSeries(lib.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350",
  });
  const overlays = new Map(OVERLAYS.map((o) => [o.key, chart.addSeries(lib.LineSeries, {
    color: o.color, lineWidth: 1, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false,
  })]));
  const markers = lib.createSeriesMarkers(candles, []);
  return { chart, candles, overlays, markers };
}

/** Candle rows of /candles (or the `market.candle` message) as chart bars. */
export function toBar(candle) {
  return {
    time: toSeconds(candle.open_time),
    open: Number(candle.open), high: Number(candle.high), low: Number(candle.low), close: Number(candle.close),
  };
}

/** One overlay point per indicator that is not warming up (null values leave a gap). */
export function overlayPoints(time, values) {
  const points = [];
  for (const o of OVERLAYS) {
    const value = values ? values[o.key] : null;
    if (value !== null && value !== undefined && Number.isFinite(Number(value))) points.push([o.key, { time, value: Number(value) }]);
  }
  return points;
}

/** Net realised PnL and drawdown after each fill, over the fill's number (1, 2, ...): the
 * fills of a replay happen within seconds of wall-clock time, so a time axis would squash them. */
export function createEquityChart(lib, container) {
  const chart = lib.createOptionsChart(container, {
    ...THEME,
    timeScale: { borderColor: "#2a3642" },
    localization: { precision: 0 },
    leftPriceScale: { visible: true, borderColor: "#2a3642" },
  });
  const equity = chart.addSeries(lib.LineSeries, { color: "#4c9aff", lineWidth: 2, title: "net PnL" });
  const drawdown = chart.addSeries(lib.HistogramSeries, {
    priceScaleId: "left", color: "rgba(239,83,80,0.55)", title: "drawdown", priceLineVisible: false,
  });
  return { chart, equity, drawdown };
}
