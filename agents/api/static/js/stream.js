// The live stream (Server-Sent Events) with its state made visible: "live", "connecting" or
// "lost". On any error the connection is closed and opened again with the last event id, so the
// service replays what was missed (or answers `gap`, and the page reloads its REST state).

import { api } from "./api.js";

const EVENT_TYPES = ["candle", "indicators", "signal", "order", "rejection", "report", "position",
  "heartbeat", "risk_metrics", "control", "gap"];
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

export class LiveStream {
  /**
   * @param {(type: string, event: object) => void} onEvent every event's parsed data
   * @param {(state: string, detail: string) => void} onState "connecting" | "live" | "lost"
   */
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = null;
    this.failures = 0;
    this.source = null;
    this.timer = null;
  }

  start() {
    this.stop();
    this.onState(this.failures ? "lost" : "connecting", this.failures ? `reconnect attempt ${this.failures}` : "");
    const source = new EventSource(api.streamUrl(this.lastId));
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.onState("live", "");
    };
    source.onerror = () => {
      if (this.source !== source) return;
      // Taken over here: the browser's own retry would not carry last_event_id in the URL.
      source.close();
      this.failures += 1;
      const wait = BACKOFF_MS[Math.min(this.failures - 1, BACKOFF_MS.length - 1)];
      this.onState("lost", `reconnecting in ${wait / 1000} s`);
      this.timer = setTimeout(() => this.start(), wait);
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => this.deliver(type, message));
    }
  }

  deliver(type, message) {
    if (message.lastEventId) this.lastId = message.lastEventId;
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return; // not ours to show: the service only sends JSON
    }
    this.onEvent(type, data);
  }

  stop() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }
}
