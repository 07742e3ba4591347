// The live page: polls /live/state.json and redraws the tables, without reloading the page.
"use strict";
(function () {
  const config = JSON.parse(document.body.dataset.config);
  const L = config.labels;
  const nf = new Intl.NumberFormat(document.documentElement.lang === "nb" ? "nb-NO" : "en-GB");
  const clock = new Intl.DateTimeFormat(document.documentElement.lang === "nb" ? "nb-NO" : "en-GB",
    { timeZone: "Europe/Oslo", hour: "2-digit", minute: "2-digit", second: "2-digit" });

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }
  function label(prefix, key) { return L[prefix + "_" + key] || key; }
  function age(seconds) {
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    return (h ? h + " " + L.hours_short + " " : "") + m + " " + L.minutes_short;
  }
  function fill(table, rows) {
    const body = table.tBodies[0];
    const columns = Array.from(table.tHead.rows[0].cells).map((c) => c.firstChild.textContent);
    body.replaceChildren();
    if (!rows.length) {
      const empty = el("tr");
      empty.append(el("td", L.no_data, { colspan: String(columns.length) }));
      body.append(empty);
      return;
    }
    for (const row of rows) {
      const tr = el("tr", null, row.attrs);
      row.cells.forEach((cell, i) => {
        cell.setAttribute("data-label", columns[i]);
        tr.append(cell);
      });
      body.append(tr);
    }
  }
  function valueCell(cell, hour, own) {
    // own: this row's hour when its mode is behind the newest hour of the page (counters lag).
    const td = el("td", null, { class: "num", "data-hour": hour });
    if (!cell) { td.textContent = "–"; }
    else {
      td.append(el("span", nf.format(cell.value), { class: "value" }));
      td.append(el("span", L.coverage + " " + nf.format(cell.coverage) + " %", { class: "sub" }));
    }
    if (own) { td.append(el("span", own.label, { class: "sub own-hour" })); }
    return td;
  }

  function render(state) {
    document.getElementById("synthetic").hidden = !state.synthetic;
    document.getElementById("updated").textContent = clock.format(new Date(state.generated_at));
    document.getElementById("updated").setAttribute("datetime", state.generated_at);
    const topics = state.topics;
    document.getElementById("topics").textContent = L.topics + ": " + (!topics.followed
      ? L.topics_off : topics.connected ? L.topics_connected : L.topics_disconnected);
    document.getElementById("current-hour").textContent =
      state.hours.current ? state.hours.current.label : "";
    document.getElementById("previous-hour").textContent =
      state.hours.previous ? state.hours.previous.label : "";

    fill(document.getElementById("volumes"), state.volumes.map((v) => ({
      attrs: { "data-kommune": v.kommune_nr, "data-mode": v.mode },
      cells: [
        el("td", v.kommune_nr + " " + v.kommune),
        el("td", label("mode", v.mode) + " · " + label("metric", v.metric)),
        valueCell(v.current, "current", v.hours && v.hours.current),
        valueCell(v.previous, "previous", v.hours && v.hours.previous),
      ],
    })));
    fill(document.getElementById("sensors"), state.sensors.map((s) => ({
      attrs: { "data-point": s.source + ":" + s.point_id, "data-state": s.state },
      cells: [
        el("td", (s.name || s.point_id) + (s.name ? " (" + s.point_id + ")" : "")),
        el("td", s.kommune_nr ? s.kommune_nr + " " + s.kommune : "–"),
        el("td", label("state", s.state), { class: "state state-" + s.state }),
        el("td", s.since_local || "–"),
      ],
    })));
    fill(document.getElementById("freshness"), state.freshness.map((f) => ({
      attrs: { "data-source": f.name },
      cells: [
        el("td", f.kind === "transit" ? label("mode", f.name) : f.name),
        el("td", f.newest_label),
        el("td", age(f.age_seconds), { class: "num" }),
        el("td", f.n === null ? "–" : nf.format(f.n), { class: "num" }),
      ],
    })));
  }

  async function poll() {
    const query = config.region ? "?region=" + encodeURIComponent(config.region) : "";
    try {
      const answer = await fetch("/live/state.json" + query, { cache: "no-store" });
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      render(await answer.json());
      document.getElementById("offline").hidden = true;
    } catch (err) {
      document.getElementById("offline").hidden = false;
    } finally {
      setTimeout(poll, config.poll_ms);
    }
  }
  poll();
})();
