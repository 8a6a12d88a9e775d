// The operator's controls. Each asks for confirmation and a reason (recorded with who asked),
// then POSTs to /api/v1/controls/*; the agents apply the control message, the page shows the
// service's answer. A read-only token's request is refused by the service (403), and the page says so.

import { api } from "./api.js";

const $ = (id) => document.getElementById(id);
const NAME_KEY = "tradebus.console.operator";

/** Show one message at the top; ``source`` names what a later success may clear. */
export function showNotice(kind, text, source = "") {
  const box = $("notice");
  box.dataset.kind = kind;
  box.dataset.source = source;
  box.textContent = text;
  box.hidden = false;
}

export function clearNotice(source) {
  const box = $("notice");
  if (!box.hidden && box.dataset.source === source) box.hidden = true;
}

/** Ask for confirmation and a reason; resolves to the reason, or null when cancelled. */
function confirmAction(title, text, defaultReason) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  const reason = $("confirm-reason");
  reason.value = defaultReason;
  $("confirm-by").value = sessionStorage.getItem(NAME_KEY) || "";
  return new Promise((resolve) => {
    const finish = (value) => {
      dialog.removeEventListener("close", onClose);
      $("confirm-cancel").onclick = null;
      resolve(value);
    };
    const onClose = () => finish(dialog.returnValue === "ok" && reason.value.trim() ? reason.value.trim() : null);
    dialog.addEventListener("close", onClose);
    $("confirm-cancel").onclick = () => dialog.close("cancel");
    $("confirm-form").onsubmit = (event) => {
      event.preventDefault();
      if (reason.value.trim()) dialog.close("ok");
    };
    dialog.returnValue = "";
    dialog.showModal();
    reason.select();
  });
}

export class Controls {
  /** @param {() => void} afterControl refresh what a control may change */
  constructor(afterControl) {
    this.afterControl = afterControl;
    this.role = null;
  }

  /** Mark the controls as refused for a read-only token (the service refuses them regardless). */
  setRole(role) {
    this.role = role;
    document.body.dataset.role = role || "";
  }

  async send(title, text, defaultReason, path, body = {}) {
    const reason = await confirmAction(title, text, defaultReason);
    if (reason === null) return null;
    // Who asked goes on the record; without a name the service records the token's role.
    const by = $("confirm-by").value.trim();
    sessionStorage.setItem(NAME_KEY, by);
    try {
      const answer = await api.post(path, { ...body, reason, ...(by ? { requested_by: by } : {}) });
      showNotice("ok", `${title}: sent (${answer.control || answer.routing_key}); the agents apply it.`);
      this.afterControl();
      return answer;
    } catch (error) {
      const refused = error.status === 403 || error.status === 401;
      const prefix = refused ? "Refused: this token may not use controls" : `${title} failed`;
      showNotice(refused ? "refused" : "error", `${prefix} (${error.status || "no answer"}: ${error.detail})`);
      return null;
    }
  }

  emergencyStop(active) {
    return active
      ? this.send("Emergency stop", "Engage the emergency stop? The risk manager approves nothing and execution places nothing until it is released.",
        "operator emergency stop from the console", "/controls/emergency-stop", { active: true })
      : this.send("Release emergency stop", "Release the emergency stop? Trading resumes with the next signal.",
        "released from the console", "/controls/emergency-stop", { active: false });
  }

  cancelOrder(order) {
    return this.send("Cancel order", `Cancel order ${order.client_order_id} (${order.side} ${order.quantity} ${order.symbol})?`,
      "cancelled from the console", `/controls/orders/${encodeURIComponent(order.client_order_id)}/cancel`);
  }

  closePosition(position) {
    return this.send("Close position", `Close ${position.strategy_id}'s ${position.quantity} ${position.symbol}? A SELL signal goes through the risk manager.`,
      "closed from the console", "/controls/positions/close",
      { strategy_id: position.strategy_id, symbol: position.symbol, exchange: position.exchange });
  }

  setPaused(strategyId, pause) {
    const verb = pause ? "pause" : "resume";
    return this.send(`${pause ? "Pause" : "Resume"} strategy`, `${pause ? "Pause" : "Resume"} strategy ${strategyId}?`,
      `${verb}d from the console`, `/controls/strategies/${encodeURIComponent(strategyId)}/${verb}`);
  }
}
