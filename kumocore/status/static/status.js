// kumocore status page: keeps the server-rendered tables current from the
// Server-Sent Events stream, draws the throughput chart, and calls the admin API for
// the queue actions (same-origin JSON requests). Written for kumocore; no dependencies.
"use strict";

(function () {
  const HISTORY = 300; // seconds of samples kept for the chart
  const SERIES = [
    ["received", "received"], ["delivered", "delivered"],
    ["transfail", "transient failures"], ["fail", "bounced"],
  ];
  const samples = []; // {t, received, delivered, transfail, fail}
  let latest = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "";
    let s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + "d" + h + "h";
    if (h) return h + "h" + m + "m";
    return m ? m + "m" + s + "s" : s + "s";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i ? n.toFixed(1) + " " + units[i] : n + " B";
  }

  function fill(tableId, rows, columns, empty) {
    const body = $(tableId).tBodies[0];
    const out = rows.length ? rows.map((cells) => el("tr", {}, ...cells.map(
      (c) => el("td", {}, c)))) : [el("tr", { class: "empty" },
        el("td", { colspan: String(columns) }, empty))];
    body.replaceChildren(...out);
  }

  const num = (v) => el("span", { class: "num" }, v);

  // ------------------------------------------------------------------ throughput
  function rate(key, span) {
    if (samples.length < 2) return null;
    const last = samples[samples.length - 1];
    const first = samples[Math.max(0, samples.length - 1 - span)];
    const dt = last.t - first.t;
    return dt > 0 ? (last[key] - first[key]) / dt : null;
  }

  function renderCounters(status) {
    const c = status.counters;
    const labels = { received: "received", delivered: "delivered",
      transfail: "transient failures", fail: "bounced", expired: "expired" };
    fill("counters", Object.entries(labels).map(([key, label]) => {
      const r = rate(key, 5);
      return [label, num(c[key] || 0), num(r === null ? "" : r.toFixed(1))];
    }), 3, "");
  }

  function renderChart() {
    const svgNS = "http://www.w3.org/2000/svg";
    // Drawn at the panel's own width (1 unit = 1 px) so text keeps its size.
    const W = Math.max(320, $("chart").clientWidth), H = 180, P = 30;
    const points = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1], b = samples[i], dt = b.t - a.t;
      if (dt <= 0) continue;
      const p = { t: b.t };
      for (const [key] of SERIES) p[key] = Math.max(0, (b[key] - a[key]) / dt);
      points.push(p);
    }
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("class", "chart-svg");
    svg.setAttribute("role", "img");
    let max = 1;
    for (const p of points) for (const [key] of SERIES) max = Math.max(max, p[key]);
    const now = samples.length ? samples[samples.length - 1].t : 0;
    // The last minute at first, growing to HISTORY as samples come in.
    const span = samples.length ? Math.min(HISTORY, Math.max(60, now - samples[0].t)) : 60;
    const x = (t) => P + (W - 2 * P) * (1 - (now - t) / span);
    const y = (v) => H - P + (-(H - 2 * P) * v) / max;
    const line = (x1, y1, x2, y2, cls) => {
      const l = document.createElementNS(svgNS, "line");
      for (const [k, v] of Object.entries({ x1, y1, x2, y2, class: cls })) l.setAttribute(k, v);
      svg.append(l);
    };
    const text = (tx, ty, s, cls) => {
      const t = document.createElementNS(svgNS, "text");
      t.setAttribute("x", tx); t.setAttribute("y", ty); t.setAttribute("class", cls);
      t.textContent = s; svg.append(t);
    };
    line(P, H - P, W - P, H - P, "axis");
    line(P, P, P, H - P, "axis");
    text(2, P + 4, max.toFixed(max < 10 ? 1 : 0), "tick");
    text(2, H - P, "0", "tick");
    text(P, H - 8, "-" + age(span), "tick");
    text(W - P - 20, H - 8, "now", "tick");
    SERIES.forEach(([key, label], i) => {
      const poly = document.createElementNS(svgNS, "polyline");
      poly.setAttribute("points", points.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" "));
      poly.setAttribute("class", "series s" + i);
      svg.append(poly);
      line(P + 10 + i * 140, 12, P + 30 + i * 140, 12, "series s" + i);
      text(P + 35 + i * 140, 16, label, "legend");
    });
    $("chart").replaceChildren(svg);
  }

  // ------------------------------------------------------------------ queues
  function button(label, onclick, cls) {
    return el("button", { type: "button", class: cls || "", onclick }, label);
  }

  const lastDelivered = {};
  function renderQueues(status) {
    const queues = status.queues || { scheduled: [], ready: [] };
    fill("scheduled", queues.scheduled.map((q) => {
      const actions = el("span", { class: "actions" },
        button("messages", () => showQueue(q.name), "messages"),
        q.suspended_until
          ? button("resume", () => resume(q), "resume")
          : button("suspend", () => suspend(q.name), "suspend"),
        button("bounce", () => bounce(q.name), "bounce danger"),
        button("retry now", () => retry(q), "retry"));
      const state = q.suspended_until ? "suspended " + age(q.suspended_until - status.time) : "";
      return [el("span", { class: "qname" }, q.name), num(q.count), age(q.oldest_age),
        q.egress_pool, state, actions];
    }), 6, "no scheduled queues");
    // The current rate of a path: its delivered count against the previous update's.
    const rows = queues.ready.map((q) => {
      const before = lastDelivered[q.name];
      const perSecond = before && status.time > before.time
        ? ((q.delivered || 0) - before.count) / (status.time - before.time) : null;
      lastDelivered[q.name] = { count: q.delivered || 0, time: status.time };
      const current = perSecond === null ? "-" : Math.max(perSecond, 0).toFixed(1);
      return [q.source + " → " + q.site, num(q.count), q.connections + " / " + q.connection_limit,
        current + " / " + (q.max_message_rate || "no limit"), q.last_error || ""];
    });
    fill("ready", rows, 5, "no ready queues");
  }

  function renderResponses(status) {
    fill("responses", status.recent.responses.slice(0, 25).map((r) => [r.site, r.kind,
      String(r.code), r.enhanced_code, r.text, num(r.count)]), 6,
    "no transient failures or bounces");
    fill("classes", Object.entries(status.recent.bounce_classes).map(
      ([name, count]) => [name, num(count)]), 2, "no bounces");
  }

  function renderRules(status) {
    const rows = [];
    for (const [kind, rules] of [["suspend", status.suspensions], ["bounce", status.bounces]]) {
      for (const r of rules) {
        const target = (r.queue_names || []).join(", ") || ["campaign", "tenant", "domain",
          "routing_domain"].filter((k) => r[k]).map((k) => k + "=" + r[k]).join(" ") || "everything";
        rows.push([kind, target, r.reason, age(r.remaining),
          el("span", { class: "actions" }, button("cancel", () => cancelRule(kind, r.id, target), "cancel"))]);
      }
    }
    for (const a of status.automation || []) {
      let target = a.site || a.domain || "";
      if (a.name) target += " " + a.name + "=" + a.value;
      for (const k of ["tenant", "campaign"]) if (a[k]) target += " " + k + "=" + a[k];
      rows.push(["automation: " + a.kind, target.trim(), a.reason + " (" + a.rule + ")",
        age(a.remaining_seconds),
        el("span", { class: "actions" }, button("cancel", () => cancelAutomation(a.id, target), "cancel"))]);
    }
    fill("rules", rows, 5, "no active suspensions, bounce rules or automation actions");
  }

  function renderNode(status) {
    const n = status.node;
    const facts = [["host", n.hostname], ["version", n.version], ["workers", String(status.workers)],
      ["uptime", age(n.uptime)], ["policy", n.policy_path || "(none)"]];
    for (const s of n.spools) {
      facts.push([s.role + " spool", (s.path || "(memory)") + " — " + bytes(s.free_bytes) +
        " free of " + bytes(s.total_bytes)]);
    }
    for (const [sink, stats] of Object.entries(n.log_sinks)) {
      facts.push(["log sink " + sink, Object.entries(stats).map(([k, v]) => k + " " + v).join(", ")]);
    }
    $("node").tBodies[0].replaceChildren(...facts.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
  }

  function update(status) {
    latest = status;
    const c = status.counters;
    samples.push({ t: status.time, received: c.received, delivered: c.delivered,
      transfail: c.transfail, fail: c.fail, expired: c.expired });
    while (samples.length && samples[0].t < status.time - HISTORY) samples.shift();
    $("updated").textContent = "updated " + new Date(status.time * 1000).toLocaleTimeString();
    renderCounters(status);
    renderChart();
    renderQueues(status);
    renderResponses(status);
    renderRules(status);
    renderNode(status);
  }

  // ------------------------------------------------------------------ admin API
  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      throw new Error((data && data.error) || String(data) || response.statusText);
    }
    return data;
  }

  // One confirmation dialog for every state-changing action.
  function confirmAction(text, withFields, action) {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    $("confirm-fields").hidden = !withFields;
    $("confirm-error").textContent = "";
    const ok = $("confirm-ok");
    const onOk = async (event) => {
      event.preventDefault();
      try {
        await action($("confirm-reason").value, $("confirm-duration").value);
        dialog.close();
      } catch (err) {
        $("confirm-error").textContent = err.message;
      }
    };
    ok.onclick = onOk;
    dialog.showModal();
  }

  function suspend(name) {
    confirmAction("Suspend delivery for queue " + name + "?", true, (reason, duration) =>
      api("POST", "/api/admin/suspend/v1", { queue_names: [name], reason, duration }));
  }

  // The suspensions that hold queue q: by exact name, or by every field they set
  // (as the server matches them; a rule with no field at all holds every queue).
  function holds(rule, q) {
    if ((rule.queue_names || []).length) return rule.queue_names.includes(q.name);
    return ["campaign", "tenant", "domain", "routing_domain"].every(
      (k) => !rule[k] || rule[k] === q[k]);
  }

  function resume(q) {
    const ids = (latest ? latest.suspensions : []).filter((r) => holds(r, q)).map((r) => r.id);
    confirmAction("Resume queue " + q.name + " (cancel " + ids.length + " suspension(s))?", false,
      async () => {
        for (const id of ids) {
          try {
            await api("DELETE", "/api/admin/suspend/v1", { id });
          } catch (err) { // already expired or cancelled elsewhere: that is what we wanted
            if (!err.message.startsWith("no active suspension")) throw err;
          }
        }
      });
  }

  function bounce(name) {
    confirmAction("Bounce every message in queue " + name + "? This cannot be undone.", true,
      (reason, duration) => api("POST", "/api/admin/bounce/v1", { queue_names: [name], reason, duration }));
  }

  function retry(q) {
    const body = { domain: q.domain, always_flush: true, reason: "retry now (status page)" };
    if (q.tenant) body.tenant = q.tenant;
    if (q.campaign) body.campaign = q.campaign;
    if (q.routing_domain) body.routing_domain = q.routing_domain;
    confirmAction("Retry every message in queue " + q.name + " now?", false,
      () => api("POST", "/api/admin/rebind/v1", body));
  }

  function cancelRule(kind, id, target) {
    confirmAction("Cancel the " + kind + " rule for " + target + "?", false,
      () => api("DELETE", "/api/admin/" + kind + "/v1", { id }));
  }

  // ------------------------------------------------------------------ detail views
  function cancelAutomation(id, target) {
    confirmAction("Cancel the automation action on " + target + "?", false,
      () => api("DELETE", "/api/admin/tsa/v1", { id: id }));
  }

  async function showQueue(name) {
    const panel = $("detail-panel");
    $("detail-title").textContent = "Messages in " + name;
    panel.hidden = false;
    try {
      const view = await api("GET", "/api/admin/inspect-sched-q/v1?limit=100&queue_name=" + encodeURIComponent(name));
      const rows = view.messages.map((m) => el("tr", {},
        el("td", {}, el("a", { href: "#", class: "msgid", onclick: (e) => { e.preventDefault(); showMessage(m.id); } }, m.id)),
        el("td", {}, m.message.sender), el("td", {}, m.message.recipient),
        el("td", {}, String(m.message.num_attempts)), el("td", {}, m.message.due || "")));
      const table = el("table", { id: "messages" }, el("thead", {}, el("tr", {},
        ...["id", "sender", "recipient", "attempts", "due"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows));
      $("detail").replaceChildren(el("p", {}, view.num_scheduled + " waiting (first 100 shown)"), table);
    } catch (err) {
      $("detail").replaceChildren(el("p", { class: "error" }, err.message));
    }
  }

  async function showMessage(id) {
    $("detail-title").textContent = "Message " + id;
    try {
      const view = await api("GET", "/api/admin/inspect-message/v1?want_body=true&id=" + encodeURIComponent(id));
      $("detail").replaceChildren(el("pre", { id: "inspect" }, JSON.stringify(view, null, 2)));
    } catch (err) {
      $("detail").replaceChildren(el("p", { class: "error" }, err.message));
    }
  }

  // ------------------------------------------------------------------ stream
  function connect() {
    const live = $("live");
    const source = new EventSource("/status/events");
    source.addEventListener("status", (event) => {
      const status = JSON.parse(event.data);
      if (status.error) { live.textContent = "error: " + status.error; return; }
      live.textContent = "live";
      live.className = "live on";
      update(status);
    });
    source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.documentElement.classList.remove("nojs");
    $("detail-close").addEventListener("click", () => { $("detail-panel").hidden = true; });
    $("confirm-cancel").addEventListener("click", () => $("confirm").close());
    connect();
  });
})();
