// The tables and figures of the console, each drawn from one REST answer (claudedocs/api.md).
// Control buttons call back into controls.js, which asks for confirmation and a reason.

import { candleTimeOf, dec, el, fillTable, numCell, percent, shortTime, tag } from "./format.js";

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["FILLED", "CANCELED", "REJECTED", "EXPIRED"]);

export function drawBalances({ balances }) {
  fillTable($("balances"), ["asset", "total", "available", "reserved"],
    balances.map((b) => [el("td", {}, b.asset), numCell(b.total), numCell(b.available), numCell(b.reserved)]));
}

/** Headline figures: realised PnL from /pnl, equity and drawdown from the latest risk metrics. */
export function drawFigures(pnl, metrics) {
  const figures = [
    ["net realised PnL", pnl ? dec(pnl.net_realised, 2) : "–"],
    ["unrealised PnL", pnl ? dec(pnl.unrealised_pnl, 2) : "–"],
    ["fees paid", pnl ? dec(pnl.fees_paid, 4) : "–"],
    ["equity", metrics ? `${dec(metrics.equity, 2)} ${metrics.quote_asset}` : "–"],
    ["drawdown", metrics ? percent(metrics.drawdown) : "–"],
    ["exposure / heat", metrics ? `${dec(metrics.total_exposure, 2)} / ${percent(metrics.heat)}` : "–"],
    ["risk score", metrics ? `${dec(metrics.risk_score, 1)} (${metrics.warning_level})` : "–"],
    ["open positions", metrics ? String(metrics.open_positions) : "–"],
  ];
  $("pnl").replaceChildren(...figures.map(([label, value]) => el("div", {}, el("dt", {}, label), el("dd", {}, value))));
}

export function drawPositions({ positions }, controls) {
  fillTable($("positions"), ["strategy", "symbol", "qty", "entry", "mark", "unrealised", "realised", ""],
    positions.map((p) => el("tr", { dataset: { strategy: p.strategy_id, symbol: p.symbol } },
      el("td", {}, p.strategy_id), el("td", {}, p.symbol), numCell(p.quantity), numCell(p.average_entry_price, 2),
      el("td", { class: "num", title: p.price_note || "" }, p.mark_price === null ? "no price" : dec(p.mark_price, 2)),
      numCell(p.unrealised_pnl, 2, true), numCell(p.realised_pnl, 2, true),
      el("td", {}, Number(p.quantity) > 0
        ? el("button", { type: "button", class: "small control", onclick: () => controls.closePosition(p) }, "close")
        : ""))), "no open positions");
}

export function drawOrders({ items }, controls) {
  fillTable($("orders"), ["time", "strategy", "symbol", "side", "qty", "filled", "avg", "status", ""],
    items.map((o) => el("tr", { dataset: { order: o.client_order_id, symbol: o.symbol } },
      el("td", { title: o.client_order_id }, shortTime(o.created_at)), el("td", {}, o.strategy_id), el("td", {}, o.symbol),
      el("td", {}, tag(o.side)),
      numCell(o.quantity), numCell(o.filled), numCell(o.average_price, 2),
      el("td", { title: o.reason || "" }, tag(o.status)),
      el("td", {}, TERMINAL.has(o.status) ? ""
        : el("button", { type: "button", class: "small control", onclick: () => controls.cancelOrder(o) }, "cancel")))),
    "no orders yet");
}

export function drawStrategies({ strategies }, controls) {
  fillTable($("strategies"), ["strategy", "symbols", "state", ""],
    strategies.map((s) => {
      const state = !s.enabled ? "disabled" : s.paused ? "paused" : s.paused === null ? "running?" : "running";
      const action = s.paused ? "resume" : "pause";
      return el("tr", { dataset: { strategy: s.strategy_id } },
        el("td", { title: `kind: ${s.kind}` }, s.strategy_id), el("td", {}, (s.symbols || []).join(", ")), el("td", {}, state),
        el("td", {}, s.enabled ? el("button", { type: "button", class: "small control",
          onclick: () => controls.setPaused(s.strategy_id, action === "pause") }, action) : ""));
    }), "no strategies configured");
}

export function drawAgents({ agents }) {
  fillTable($("agents"), ["agent", "health", "seen", "errors"],
    agents.map((a) => el("tr", { dataset: { agent: a.agent, health: a.health } },
      el("td", {}, a.agent),
      el("td", { class: "wrap" }, tag(a.health), a.stale ? tag("stale") : "", a.problems ? ` ${a.problems}` : ""),
      el("td", { title: `consumed ${a.consumed}, published ${a.published}, dead-lettered ${a.dead_lettered}` },
        `${Math.round(a.age_seconds)} s ago`), numCell(a.errors, 0))),
    "no heartbeat heard yet");
}

/** Update one agent's row from a heartbeat without waiting for the next /agents poll. */
export function updateAgentHealth(beat) {
  const row = document.querySelector(`#agents tr[data-agent="${CSS.escape(beat.agent)}"]`);
  if (!row) return false;
  row.dataset.health = beat.health;
  row.cells[1].replaceChildren(tag(beat.health), beat.detail && beat.detail.problems ? ` ${beat.detail.problems}` : "");
  row.cells[2].textContent = "just now";
  row.cells[3].textContent = dec(beat.errors, 0);
  return true;
}

export function drawQueues({ queues }) {
  fillTable($("queues"), ["queue", "depth", "consumers", "dead"],
    queues.map((q) => el("tr", { dataset: { queue: q.name } },
      el("td", { title: q.name }, shortQueue(q.name)),
      q.exists ? numCell(q.depth, 0) : el("td", { class: "muted" }, "absent"),
      numCell(q.consumers, 0),
      el("td", { class: `num ${q.dead_letters ? "neg" : ""}`.trim() }, dec(q.dead_letters, 0)))));
}

export function drawDeadLetters({ queues }) {
  const box = $("dead-letters");
  const nonEmpty = queues.filter((q) => q.count > 0);
  if (!nonEmpty.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No dead letters."));
    return;
  }
  box.replaceChildren(...nonEmpty.map((q) => el("details", { open: true, dataset: { queue: q.queue } },
    el("summary", {}, `${shortQueue(q.queue)}: ${q.count}`),
    el("ul", { class: "feed" }, q.sample.map((m) => el("li", {},
      el("div", { class: "when" }, `${shortTime(m.dead_lettered_at)} · ${m.schema || m.kind || "?"} · ${m.routing_key || ""}`),
      el("div", {}, m.error || "no reason recorded")))))));
}

/** The newest approvals and rejections (HOLDs the risk manager ignored are left out: noise). */
export function drawDecisions(items) {
  $("decisions").replaceChildren(...items.map(decisionItem));
}

/** A decision that arrived on the stream goes on top; the list keeps its newest 100. */
export function prependDecision(decision) {
  const list = $("decisions");
  list.prepend(decisionItem(decision));
  while (list.children.length > 100) list.lastElementChild.remove();
}

function decisionItem(d) {
  const reason = d.decision === "REJECTED" ? d.reason : "";
  const candle = candleTimeOf(d);
  const when = candle ? `candle ${shortTime(candle)}` : shortTime(d.decided_at);
  return el("li", { dataset: { decision: d.decision, side: d.side, reason: reason || "", signal: d.signal_id } },
    el("div", { class: "when" }, `${when} · ${d.strategy_id} · ${d.symbol}`),
    el("div", {}, tag(d.side), " ", tag(d.decision), reason ? ` ${reason}` : "", d.detail ? `: ${d.detail}` : ""));
}

/** "tbsys_x.risk_manager.signals" -> "risk_manager.signals": the exchange prefix is the same for all. */
function shortQueue(name) {
  const parts = String(name).split(".");
  return parts.length > 2 ? parts.slice(1).join(".") : name;
}
