// The console page: asks for a token, loads the state from REST, then follows the live stream.
// REST is the truth; the stream keeps the page current between reloads (and a `gap` reloads it).

import { ApiError, api, token } from "./api.js";
import { createEquityChart, loadLibrary } from "./charts.js";
import { Controls, clearNotice, showNotice } from "./controls.js";
import * as panels from "./panels.js";
import { PricePanel } from "./price.js";
import { LiveStream } from "./stream.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 5000;

const state = { metrics: null, pnl: null, price: null, equity: null, emergency: false, signals: new Map(), timers: new Map() };
const controls = new Controls(() => refreshSoon("risk", 300));

/** Show the token dialog until the service accepts a token; the role it grants. */
async function authenticate() {
  for (;;) {
    if (token.get()) {
      try {
        return (await api.get("/whoami")).role;
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 401) throw error;
        token.clear();
        $("token-error").textContent = "The service did not accept that token.";
        $("token-error").hidden = false;
      }
    }
    token.set(await askToken());
  }
}

function askToken() {
  const dialog = $("token-dialog");
  const input = $("token-input");
  input.value = "";
  return new Promise((resolve) => {
    $("token-form").onsubmit = (event) => {
      event.preventDefault();
      if (!input.value.trim()) return;
      dialog.close();
      resolve(input.value.trim());
    };
    // Without a token nothing can be shown: the dialog cannot be dismissed with Escape.
    dialog.oncancel = (event) => event.preventDefault();
    dialog.showModal();
    input.focus();
  });
}

function showRole(role) {
  const badge = $("role");
  badge.dataset.role = role;
  badge.textContent = role === "operator" ? "operator" : "read-only: controls refused";
  badge.title = role === "operator" ? "this token may use the controls" : "this token may only read; the service refuses its controls";
  controls.setRole(role);
}

/** The risk manager's effective state: an engaged emergency stop halts everything whatever the
 * persisted trading state says (it approves nothing, execution places nothing). */
function showTradingState(tradingState, emergency) {
  const badge = $("trading-state");
  const effective = emergency ? "HALTED" : tradingState || "?";
  badge.dataset.state = effective;
  badge.textContent = `state: ${effective}${emergency ? " (emergency stop)" : ""}`;
  badge.title = `risk manager trading state ${tradingState || "unknown"}; emergency stop ${emergency ? "engaged" : "released"}`;
  state.emergency = Boolean(emergency);
  $("estop-engage").hidden = state.emergency;
  $("estop-release").hidden = !state.emergency;
}

function showStream(streamState, detail) {
  const badge = $("stream-state");
  badge.dataset.state = streamState;
  badge.textContent = `stream: ${streamState}${detail ? ` (${detail})` : ""}`;
  $("stream-banner").hidden = streamState !== "lost";
}

// --- loading ---------------------------------------------------------------------------------
const LOADERS = {
  account: async () => {
    const [balances, pnl, positions] = await Promise.all([api.get("/balances"), api.get("/pnl"), api.get("/positions")]);
    state.pnl = pnl;
    panels.drawBalances(balances);
    panels.drawFigures(pnl, state.metrics);
    panels.drawPositions(positions, controls);
  },
  orders: async () => panels.drawOrders(await api.get("/orders", { limit: 20 }), controls),
  equity: async () => drawEquity(await api.get("/equity")),
  decisions: async () => {
    const [approved, rejected] = await Promise.all(["APPROVED", "REJECTED"].map((decision) => api.get("/decisions", { decision, limit: 40 })));
    panels.drawDecisions([...approved.items, ...rejected.items].sort((a, b) => b.id - a.id).slice(0, 60));
  },
  strategies: async () => panels.drawStrategies(await api.get("/strategies"), controls),
  health: async () => {
    const [agents, queues, dead] = await Promise.all([api.get("/agents"), api.get("/queues"), api.get("/dead-letters", { show: 3 })]);
    panels.drawAgents(agents);
    panels.drawQueues(queues);
    panels.drawDeadLetters(dead);
  },
  risk: async () => {
    const risk = await api.get("/risk-state");
    showTradingState(risk.trading_state, risk.emergency_stop);
  },
};

async function load(name) {
  try {
    await LOADERS[name]();
  } catch (error) {
    console.error(`loading ${name} failed`, error);
    showNotice("error", `Could not load ${name}: ${error.detail || error.message}`, name);
    return;
  }
  clearNotice(name); // this part loads again: its error is over
}

/** Load `name` once after `delay` ms, however many events asked for it meanwhile. */
function refreshSoon(name, delay = 1000) {
  if (state.timers.has(name)) return;
  state.timers.set(name, setTimeout(() => {
    state.timers.delete(name);
    load(name);
  }, delay));
}

function drawEquity({ points }) {
  $("equity-note").hidden = points.length > 0;
  if (!state.equity) return;
  state.equity.equity.setData(points.map((p, i) => ({ time: i + 1, value: Number(p.net_realised) })));
  state.equity.drawdown.setData(points.map((p, i) => ({ time: i + 1, value: -Math.abs(Number(p.drawdown)) })));
  state.equity.chart.timeScale().fitContent();
}

async function loadAll() {
  await Promise.all([...Object.keys(LOADERS).map(load), loadPrice()]);
}

async function loadPrice() {
  if (!state.price || !$("symbol").value) return;
  try {
    await state.price.load($("symbol").value, state.timeframe);
  } catch (error) {
    showNotice("error", `Could not load the chart: ${error.detail || error.message}`);
  }
}

// --- live events -----------------------------------------------------------------------------
/** Signals' candle times, for the decisions that follow them (the newest 1000 are enough). */
function rememberSignal(signal) {
  state.signals.set(String(signal.message_id), signal.candle_time);
  if (state.signals.size > 1000) state.signals.delete(state.signals.keys().next().value);
}

function onEvent(type, event) {
  const message = event.message || {};
  const price = state.price;
  switch (type) {
    case "candle": price?.onCandle(message); break;
    case "indicators": price?.onIndicators(message); break;
    case "signal":
      rememberSignal(message);
      price?.onSignal(message);
      break;
    case "order":
      price?.onOrder(message);
      panels.prependDecision({ ...message, decision: "APPROVED", decided_at: event.received_at,
        candle_time: state.signals.get(String(message.signal_id)) || message.reference_time,
        detail: `approved ${message.side} ${message.quantity} ${message.symbol} at ${message.reference_price}` });
      refreshSoon("orders");
      break;
    case "rejection":
      price?.onRejection(message);
      panels.prependDecision({ ...message, decision: "REJECTED", decided_at: event.received_at,
        candle_time: state.signals.get(String(message.signal_id)) });
      break;
    case "report":
      price?.onReport(message);
      for (const name of ["orders", "account", "equity"]) refreshSoon(name);
      break;
    case "position": refreshSoon("account"); break;
    case "heartbeat": if (!panels.updateAgentHealth(message)) refreshSoon("health"); break;
    case "risk_metrics":
      state.metrics = message;
      panels.drawFigures(state.pnl, message);
      showTradingState(message.trading_state, state.emergency);
      refreshSoon("risk");
      break;
    case "control": refreshSoon("risk", 300); refreshSoon("strategies", 300); break;
    case "gap": loadAll(); break;
    default: break;
  }
}

// --- start -----------------------------------------------------------------------------------
async function start() {
  $("change-token").onclick = () => {
    token.clear();
    location.reload();
  };
  $("estop-engage").onclick = () => controls.emergencyStop(true);
  $("estop-release").onclick = () => controls.emergencyStop(false);

  showRole(await authenticate());
  const run = await api.get("/run");
  state.timeframe = run.timeframe;
  $("run-identity").textContent = `${run.trading_mode} · ${run.data_source} · ${run.exchange} · ${run.timeframe}`;
  $("symbol").replaceChildren(...run.symbols.map((s) => new Option(s, s)));
  $("symbol").onchange = loadPrice;

  const lib = await loadLibrary($("chart-note"));
  state.price = new PricePanel(lib, $("price-chart"), $("chart-legend"));
  state.equity = lib ? createEquityChart(lib, $("equity-chart")) : null;

  // Stream first, so nothing published while REST loads is missed (an event twice is harmless).
  new LiveStream(onEvent, showStream).start();
  await loadAll();
  setInterval(() => load("health"), POLL_MS);
  setInterval(() => load("risk"), POLL_MS);
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  console.error(error);
  showNotice("error", `The console could not start: ${error.detail || error.message}`);
});
