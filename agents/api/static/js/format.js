// Small DOM and number helpers. Text always goes in as text (never innerHTML): bus messages and
// ledger rows carry free-form reasons.

/** Create an element: el("td", {class: "num"}, "1.5", otherNode). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Replace a table's content with a header row and body rows (arrays of cells or <tr>s). */
export function fillTable(table, headers, rows, empty = "nothing yet") {
  const caption = table.querySelector("caption");
  table.replaceChildren(...(caption ? [caption] : []));
  table.append(el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  for (const row of rows) body.append(row instanceof Node ? row : el("tr", {}, row));
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, empty)));
  table.append(body);
}

/** A decimal string for display: trimmed to `digits` decimals, thousands separated. */
export function dec(value, digits = 8) {
  if (value === null || value === undefined || value === "") return "–";
  const number = Number(value);
  if (!Number.isFinite(number)) return String(value);
  return number.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** A numeric cell, coloured by sign when `signed`. */
export function numCell(value, digits = 8, signed = false) {
  const number = Number(value);
  const tone = signed && Number.isFinite(number) && number !== 0 ? (number > 0 ? "pos" : "neg") : "";
  return el("td", { class: `num ${tone}`.trim() }, dec(value, digits));
}

export function percent(ratio) {
  const number = Number(ratio);
  return Number.isFinite(number) ? `${(number * 100).toFixed(2)} %` : "–";
}

/** Seconds since the epoch (the chart's time unit) of an ISO time; NaN if absent. */
export function toSeconds(iso) {
  return iso ? Math.floor(Date.parse(iso) / 1000) : NaN;
}

/** "2021-09-01 12:15" in UTC: the replay's market time reads the same for every operator. */
export function shortTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toISOString().slice(0, 16).replace("T", " ");
}

/** The market time of the candle a decision was about: its own field, else the audit's inputs. */
export function candleTimeOf(decision) {
  const inputs = decision.inputs && decision.inputs.signal ? decision.inputs.signal.candle_time : null;
  return decision.candle_time || inputs || null;
}

export function tag(text, extra = "") {
  return el("span", { class: `tag ${text} ${extra}`.trim() }, text);
}
