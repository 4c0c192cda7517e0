// Serin's dashboard: plain DOM, no build step. Pages: #/ (the Rollouts), #/rollouts/NS/NAME
// (one Rollout, live), #/plan/NS/NAME (its timeline). Live updates come as server-sent events.
"use strict";

const main = document.getElementById("main");
let stream = null;
let session = { mode: "kubeconfig" };

// An element with attributes (on* are listeners) and children (strings become text).
function h(tag, attrs, ...children) {
  const ns = ["svg", "path", "line", "circle", "text", "rect", "polyline", "g"].includes(tag)
    ? "http://www.w3.org/2000/svg" : null;
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function duration(sec) {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return "-";
  const s = Math.round(sec);
  const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), ss = s % 60;
  const parts = [[d, "d"], [hh, "h"], [m, "m"], [ss, "s"]];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return "0s";
  return parts.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => n + u).join("");
}

function toast(text, bad) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

// A confirmation in the page (not window.confirm, which blocks the page's updates).
function confirmFirst(text) {
  return new Promise((resolve) => {
    const d = document.getElementById("dialog");
    document.getElementById("dialog-text").textContent = text;
    d.hidden = false;
    const done = (yes) => { d.hidden = true; ok.onclick = cancel.onclick = null; resolve(yes); };
    const ok = document.getElementById("dialog-ok");
    const cancel = document.getElementById("dialog-cancel");
    ok.onclick = () => done(true);
    cancel.onclick = () => done(false);
  });
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function token() { return sessionStorage.getItem("serin-token") || ""; }

function openStream(url, handlers) {
  if (stream) stream.close();
  const live = document.getElementById("live");
  stream = new EventSource(url);
  stream.onopen = () => live.classList.add("on");
  stream.onerror = () => live.classList.remove("on");
  for (const [name, fn] of Object.entries(handlers)) {
    stream.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
}

// ---- charts -------------------------------------------------------------------------------

// Lines over time: series [{points: [[t, v]], cls, dots}], bands [{points: [[t, lo, hi]]}],
// limits [value]. y from 0 (or the lowest value) to the highest.
function chart(series, opts) {
  const W = 520, H = 170, L = 44, R = 8, T = 8, B = 20;
  const all = series.flatMap((s) => s.points);
  const bands = opts.bands || [];
  const ts = all.map((p) => p[0]).concat(bands.flatMap((b) => b.points.map((p) => p[0])));
  if (!ts.length) return h("p", { class: "muted" }, opts.empty || "no data yet");
  let t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1000);
  if (opts.now) t1 = Math.max(t1, Date.now());
  const vs = all.map((p) => p[1]).concat(opts.limits || [], bands.flatMap((b) => b.points.flatMap((p) => [p[1], p[2]])));
  let v0 = opts.yMin !== undefined ? opts.yMin : Math.min(0, ...vs);
  let v1 = opts.yMax !== undefined ? opts.yMax : Math.max(...vs, v0 + 1e-9);
  if (v1 === v0) v1 = v0 + 1;
  const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  const fmt = (v) => Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2);
  const svg = h("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, "data-chart": opts.name || "" },
    h("line", { class: "axis", x1: L, y1: y(v0), x2: W - R, y2: y(v0) }),
    h("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    h("text", { x: 2, y: T + 8 }, fmt(v1) + (opts.unit || "")),
    h("text", { x: 2, y: H - B }, fmt(v0) + (opts.unit || "")),
    h("text", { x: L, y: H - 4 }, new Date(t0).toLocaleTimeString()),
    h("text", { x: W - R - 60, y: H - 4 }, new Date(t1).toLocaleTimeString()));
  for (const b of bands) {
    if (!b.points.length) continue;
    const up = b.points.map((p) => `${x(p[0])},${y(p[2])}`);
    const down = b.points.slice().reverse().map((p) => `${x(p[0])},${y(p[1])}`);
    svg.append(h("path", { class: "band", d: "M" + up.concat(down).join("L") + "Z" }));
  }
  for (const v of opts.limits || []) svg.append(h("line", { class: "limit", x1: L, y1: y(v), x2: W - R, y2: y(v) }));
  for (const s of series) {
    if (!s.points.length) continue;
    const pts = s.points.slice();
    // A weight holds until it changes: steps, not slopes.
    let d = "";
    pts.forEach((p, i) => {
      if (i === 0) d += `M${x(p[0])},${y(p[1])}`;
      else d += s.step ? `H${x(p[0])}V${y(p[1])}` : `L${x(p[0])},${y(p[1])}`;
    });
    if (s.step && opts.now) d += `H${x(t1)}`;
    svg.append(h("path", { class: s.cls, d }));
    if (s.dots) for (const p of pts) svg.append(h("circle", { class: p[2] || "", cx: x(p[0]), cy: y(p[1]), r: 3 }));
  }
  return svg;
}

// ---- the list -----------------------------------------------------------------------------

const PHASES = ["", "Progressing", "Paused", "Healthy", "Degraded"];

function rowOf(r) {
  const versions = r.rolling ? `${r.stableImages.join(", ")} → ${r.newImages.join(", ")}` : r.newImages.join(", ");
  return h("tr", { class: "link", "data-rollout": `${r.namespace}/${r.name}`, "data-phase": r.phase,
    onclick: () => { location.hash = `#/rollouts/${r.namespace}/${r.name}`; } },
    h("td", {}, r.namespace), h("td", {}, h("b", {}, r.name)), h("td", {}, r.strategy),
    h("td", {}, h("span", { class: "phase " + r.phase }, r.phase)), h("td", {}, r.step || "-"),
    h("td", { "data-test": "weight" }, r.weight + "%"), h("td", {}, versions), h("td", {}, age(r.created)));
}

async function listPage(params) {
  const rows = new Map();
  const nsSel = h("select", { "data-filter": "namespace" }, h("option", { value: "" }, "all namespaces"));
  const phaseSel = h("select", { "data-filter": "phase" }, PHASES.map((p) => h("option", { value: p }, p || "any phase")));
  phaseSel.value = params.get("phase") || "";
  const tbody = h("tbody");
  const draw = () => {
    tbody.replaceChildren();
    const keep = [...rows.values()]
      .filter((r) => (!nsSel.value || r.namespace === nsSel.value) && (!phaseSel.value || r.phase === phaseSel.value))
      .sort((a, b) => (a.namespace + "/" + a.name).localeCompare(b.namespace + "/" + b.name));
    for (const r of keep) tbody.append(rowOf(r));
    if (!keep.length) tbody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No Rollouts.")));
  };
  nsSel.onchange = phaseSel.onchange = draw;
  const data = await getJSON("/api/rollouts");
  for (const r of data) rows.set(`${r.namespace}/${r.name}`, r);
  for (const ns of [...new Set(data.map((r) => r.namespace))].sort()) nsSel.append(h("option", { value: ns }, ns));
  nsSel.value = params.get("namespace") || "";
  main.replaceChildren(h("h1", {}, "Rollouts"),
    h("div", { class: "filters" }, nsSel, phaseSel),
    h("table", { id: "rollouts" }, h("thead", {}, h("tr", {},
      ["Namespace", "Name", "Strategy", "Phase", "Step", "Weight", "Versions", "Age"].map((c) => h("th", {}, c)))), tbody));
  draw();
  openStream("/api/stream", {
    row: (r) => { rows.set(`${r.namespace}/${r.name}`, r); draw(); },
    gone: (g) => { rows.delete(`${g.namespace}/${g.name}`); draw(); },
  });
}

// ---- one Rollout --------------------------------------------------------------------------

const ACTIONS = [
  ["promote", "Promote", "Move past the current step?"],
  ["promote-full", "Promote to the end", "Skip every remaining step and promote?"],
  ["abort", "Abort", "Abort, and send all traffic back to the stable version?"],
  ["retry", "Retry", "Run the steps again from the first?"],
  ["pause", "Pause", "Pause the rollout where it is?"],
  ["resume", "Resume", "Resume the rollout?"],
];

async function act(ns, name, action, question) {
  if (!(await confirmFirst(`${name}: ${question}`))) return;
  const headers = { "x-serin-action": "1" };
  if (token()) headers.authorization = "Bearer " + token();
  const r = await fetch(`/api/rollouts/${ns}/${name}/actions/${action}`, { method: "POST", headers });
  const body = await r.json().catch(() => ({}));
  if (r.ok) toast(body.message || "done");
  else toast(body.error || r.statusText, true);
}

function stepsList(d) {
  const idx = d.currentStep;
  return h("ol", { class: "steps", "data-test": "steps" }, d.steps.map((s, i) => {
    const cls = !d.row.rolling || i < idx ? "done" : i === idx ? "current" : "";
    return h("li", { class: cls, "data-step": i, "aria-current": i === idx && d.row.rolling ? "step" : null }, `${i + 1}. ${s}`);
  }));
}

function metricCard(m) {
  const pts = m.points.filter((p) => p.value !== undefined);
  const compare = m.points.some((p) => p.canaryRate !== undefined);
  const burn = m.points.some((p) => p.burnShort !== undefined || p.burnLong !== undefined);
  const lastOf = (key) => { const c = m.points.filter((p) => p[key] !== undefined); return c.length ? c[c.length - 1][key] : undefined; };
  const evidence = () => {
    const e = lastOf("eValue"), t = lastOf("eThreshold");
    return "e-value " + (e === undefined ? "-" : e.toPrecision(3)) + (t === undefined ? "" : ` (decides at ${t.toPrecision(3)})`);
  };
  let body;
  if (burn) {
    const b = m.points.filter((p) => p.burnShort !== undefined || p.burnLong !== undefined);
    const spent = lastOf("budgetSpent");
    body = [chart([
      { cls: "new", points: b.filter((p) => p.burnShort !== undefined).map((p) => [p.t, p.burnShort]) },
      { cls: "stable", points: b.filter((p) => p.burnLong !== undefined).map((p) => [p.t, p.burnLong]) },
    ], { name: m.name, limits: m.burnFactor === undefined ? [] : [m.burnFactor], empty: "no measurement yet" }),
    h("div", { class: "legend" }, h("b", { class: "new" }, "short"), " and ", h("b", { class: "stable" }, "long"),
      ` window burn rates; both above ${m.burnFactor} fail`, spent === undefined ? "" : ` · budget spent ${spent.toPrecision(2)}%`, " · ", evidence())];
  } else if (compare) {
    const c = m.points.filter((p) => p.canaryRate !== undefined);
    body = [chart([
      { cls: "new", points: c.map((p) => [p.t, p.canaryRate]) },
      { cls: "stable", points: c.filter((p) => p.stableRate !== undefined).map((p) => [p.t, p.stableRate]) },
    ], { name: m.name, empty: "no measurement yet" }),
    h("div", { class: "legend" }, h("b", { class: "new" }, "canary"), " and ", h("b", { class: "stable" }, "stable"),
      " bad-event rates"),
    chart([{ cls: "new", points: c.filter((p) => p.ratioLow !== undefined).map((p) => [p.t, (p.ratioLow + p.ratioHigh) / 2]) }],
      { name: m.name + "-ratio", bands: [{ points: c.filter((p) => p.ratioLow !== undefined).map((p) => [p.t, p.ratioLow, p.ratioHigh]) }], limits: [1], empty: "" }),
    h("div", { class: "legend" }, "canary/stable ratio with its interval; ", evidence())];
  } else {
    body = [chart([{ cls: "new", dots: true, points: pts.map((p) => [p.t, p.value, p.phase]) }],
      { name: m.name, limits: [m.min, m.max].filter((v) => v !== undefined), empty: "no measurement yet" })];
  }
  const last = m.points[m.points.length - 1];
  return h("div", { class: "card", "data-metric": m.name },
    h("b", {}, m.name), " ", h("span", { class: "phase " + (m.phase === "Successful" ? "Healthy" : m.phase === "Failed" ? "Degraded" : "") }, m.phase),
    h("div", { class: "legend" }, `${m.provider}${m.condition ? ": " + m.condition : ""}${last ? " · last " + last.shown : ""}`),
    body);
}

function runsSection(runs) {
  return runs.map((run) => h("div", { "data-run": run.name },
    h("h2", {}, `Analysis ${run.at} `, h("span", { class: "phase " + (run.phase === "Successful" ? "Healthy" : run.phase === "Failed" ? "Degraded" : "Progressing") }, run.phase)),
    h("div", { class: "muted" }, run.name, run.message ? " · " + run.message : ""),
    h("div", { class: "grid" }, run.metrics.map(metricCard))));
}

function rsTable(rss) {
  return h("table", { "data-test": "replicasets" }, h("thead", {}, h("tr", {}, ["ReplicaSet", "Role", "Desired", "Ready", "Available", "Images"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rss.map((rs) => h("tr", {}, h("td", {}, rs.name), h("td", {}, rs.role), h("td", {}, rs.desired), h("td", {}, rs.ready), h("td", {}, rs.available), h("td", {}, rs.images.join(", "))))));
}

function eventsTable(events) {
  return h("table", { "data-test": "events" }, h("thead", {}, h("tr", {}, ["Age", "Type", "Reason", "Message"].map((c) => h("th", {}, c)))),
    h("tbody", {}, events.slice().reverse().map((e) => h("tr", {}, h("td", {}, age(e.t)), h("td", {}, e.type), h("td", {}, e.reason), h("td", {}, e.message + (e.count > 1 ? ` (×${e.count})` : ""))))));
}

function drawRollout(ns, name, d) {
  const r = d.row;
  const bg = d.active !== null && d.active !== undefined;
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← Rollouts"), " · ", h("a", { href: `#/plan/${ns}/${name}` }, "Plan")),
    h("h1", { "data-test": "title" }, `${ns}/${name} `, h("span", { class: "phase " + r.phase, "data-test": "phase" }, r.phase)),
    h("div", { class: "muted", "data-test": "message" }, `${r.strategy} · ${r.message}`),
    h("div", { class: "actions" }, ACTIONS.map(([a, label, q]) =>
      h("button", { type: "button", "data-action": a, class: a === "abort" ? "danger" : null, onclick: () => act(ns, name, a, q) }, label))),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("div", { class: "muted" }, bg ? "Traffic on the new version" : "Canary weight"),
        h("div", { class: "big", "data-test": "weight" }, r.weight + "%"),
        h("div", { class: "muted" }, `step ${r.step || "-"} · ${r.rolling ? r.stableImages.join(", ") + " → " + r.newImages.join(", ") : r.newImages.join(", ")}`),
        bg ? h("div", { "data-test": "bluegreen" }, `active ${d.active || "-"} · preview ${d.preview || "-"}`) : null),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Weight over time"),
        chart([{ cls: "new", step: true, points: d.weights.map((p) => [p.t, p.weight]) }], { name: "weight", yMin: 0, yMax: 100, unit: "%", now: true }))),
    h("h2", {}, "Steps"), stepsList(d),
    ...runsSection(d.runs),
    h("h2", {}, "ReplicaSets"), rsTable(d.replicaSets),
    h("h2", {}, "Events"), eventsTable(d.events),
    h("p", { class: "muted" }, d.conditions.join(" · ")));
}

async function rolloutPage(ns, name) {
  let d = await getJSON(`/api/rollouts/${ns}/${name}`);
  drawRollout(ns, name, d);
  openStream(`/api/stream?namespace=${encodeURIComponent(ns)}&name=${encodeURIComponent(name)}`, {
    update: (u) => {
      d.row = u.row; d.currentStep = u.currentStep; d.active = u.active; d.preview = u.preview;
      d.replicaSets = u.replicaSets;
      if (u.weight && !(d.weights.length && d.weights[d.weights.length - 1].t === u.weight.t)) d.weights.push(u.weight);
      if (u.event && !d.events.some((e) => e.name === u.event.name && e.count === u.event.count)) {
        d.events = d.events.filter((e) => e.name !== u.event.name).concat([u.event]);
      }
      for (const run of u.runs) {
        const had = d.runs.find((x) => x.name === run.name);
        if (!had) { d.runs.unshift(run); continue; }
        had.phase = run.phase; had.message = run.message;
        for (const m of run.metrics) {
          const hm = had.metrics.find((x) => x.name === m.name);
          if (!hm) { had.metrics.push(m); continue; }
          hm.phase = m.phase;
          for (const p of m.points) {
            const i = hm.points.findIndex((q) => q.t === p.t);
            if (i >= 0) hm.points[i] = p; else hm.points.push(p);
          }
        }
      }
      drawRollout(ns, name, d);
    },
    gone: () => { main.replaceChildren(h("p", {}, `${ns}/${name} was deleted. `, h("a", { href: "#/" }, "Rollouts"))); },
  });
}

// ---- the plan -----------------------------------------------------------------------------

async function planPage(ns, name, params) {
  const rps = params.get("rps") || "";
  const t = await getJSON(`/api/rollouts/${ns}/${name}/plan${rps ? "?rps=" + encodeURIComponent(rps) : ""}`);
  const rpsInput = h("input", { type: "number", min: "0", value: rps, placeholder: "requests/s", "data-filter": "rps" });
  rpsInput.onchange = () => { location.hash = `#/plan/${ns}/${name}?rps=${rpsInput.value}`; };
  const span = (a) => (duration(a[0]) === duration(a[1]) || Number.isNaN(a[1]) ? duration(a[0]) : `${duration(a[0])}–${duration(a[1])}`);
  const n = (x) => (x === undefined || x === null ? "" : Math.round(x).toLocaleString());
  main.replaceChildren(
    h("p", {}, h("a", { href: `#/rollouts/${ns}/${name}` }, `← ${ns}/${name}`)),
    h("h1", {}, `Plan of the next update of ${name}`),
    h("p", { class: "muted" }, `${t.strategy}, ${t.replicas} replicas, traffic by ${t.traffic}`),
    h("div", { class: "filters" }, "Requests per second:", rpsInput),
    h("table", { "data-test": "plan" }, h("thead", {}, h("tr", {}, ["Step", "What", "Traffic to new", "Pods new/old", "Starts", "Lasts", t.rps ? "Requests to new" : null].filter(Boolean).map((c) => h("th", {}, c)))),
      h("tbody", {}, t.steps.map((s) => h("tr", {}, h("td", {}, s.index + 1), h("td", {}, s.step), h("td", {}, `${Math.round(s.traffic * 10) / 10}%`),
        h("td", {}, `${s.newPods}/${s.oldPods}`), h("td", {}, span(s.starts)), h("td", {}, span(s.lasts) + (s.waitsForPerson ? " + until promoted" : "")),
        t.rps ? h("td", {}, n(s.requests)) : null)))),
    h("p", {}, t.promotedAfter ? `Full promotion: earliest ${duration(t.promotedAfter[0])}, latest ${duration(t.promotedAfter[1])}` : "Full promotion: not reached",
      t.waitsForPeople.length ? ` — plus a promotion by a person at step ${t.waitsForPeople.map((i) => i + 1).join(", ")}` : ""),
    t.failures.length ? h("h2", {}, "If an analysis fails") : null,
    t.failures.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Failing", "Traffic to new", "Found after", "Traffic back", "New Pods gone", "How"].map((c) => h("th", {}, c)))),
      h("tbody", {}, t.failures.map((f) => h("tr", {}, h("td", {}, f.what), h("td", {}, `${Math.round(f.traffic)}%`), h("td", {}, f.detectedAfter === null ? "not before promotion" : duration(f.detectedAfter)),
        h("td", {}, f.trafficBackAfter === null ? "never" : duration(f.trafficBackAfter) + " later"), h("td", {}, f.podsGoneAfter === null ? "-" : duration(f.podsGoneAfter) + " later"), h("td", {}, f.how))))) : null,
    ...t.notes.map((x) => h("p", { class: "muted" }, x)));
}

// ---- routing ------------------------------------------------------------------------------

function showSession() {
  const el = document.getElementById("session");
  if (session.mode !== "token") { el.textContent = "acting with your kubeconfig"; return; }
  const input = h("input", { type: "password", placeholder: "bearer token (kubectl create token)", "data-test": "token", value: token() });
  input.onchange = () => { sessionStorage.setItem("serin-token", input.value.trim()); toast(input.value ? "token set" : "read-only"); };
  el.replaceChildren(token() ? "signed in · " : "read-only · ", input);
}

async function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "rollouts" && parts.length === 3) await rolloutPage(parts[1], parts[2]);
    else if (parts[0] === "plan" && parts.length === 3) await planPage(parts[1], parts[2], params);
    else await listPage(params);
  } catch (e) {
    main.replaceChildren(h("p", { class: "toast bad", style: "position:static" }, String(e.message || e)));
  }
}

window.addEventListener("hashchange", route);
getJSON("/api/session").then((s) => { session = s; showSession(); }).catch(() => {});
route();
