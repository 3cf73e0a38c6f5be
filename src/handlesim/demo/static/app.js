// The teaching page: draws the topology as an SVG picture (roots in the middle, secondaries on a ring grouped by
// industry, enterprises as dots in their secondary's sector), animates a lookup's hops along it, and refreshes the
// per-tier counters. Hand-written, no libraries: everything this page needs is served by handlesim itself.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const HOP_FORWARD_MS = 450;   // a request travelling to the node asked
const HOP_BACK_MS = 300;      // its answer travelling back
const COUNTERS_EVERY_MS = 1500;
const MANY_ENTERPRISES = 60;  // above this, enterprises are small unlabelled dots (hover shows their names)

const TEXT = {
  en: {
    title: "Watch an identifier lookup", identifier: "Identifier", mode_iterative: "iterative (the client walks)",
    mode_resolver: "via the recursive resolver", client_cache: "client cache", resolve: "Resolve",
    root: "root", secondary: "secondary", enterprise: "enterprise", mirror: "mirror", resolver: "resolver",
    client: "client (this page)", down: "down", hops: "Hops", values: "Values", counters: "Live counters",
    tier: "tier", up: "up", rps: "req/s", requests: "requests", cache_hits: "cache hits", cache: "cache",
    hint: "Type an identifier and press Resolve. Click a node to see it (and stop or start it).", asked: "asked", from_cache: "answered from the cache, no request sent",
    no_answer: "no answer", success: "success", working: "resolving…", client_row: "client cache (this page)",
    summary: (n, ms) => `${n} request${n === 1 ? "" : "s"} over the network, ${ms} ms in total`,
    summary_cache: (ms) => `0 requests: everything came from a cache (${ms} ms)`,
    via: (r, ms) => `one request to ${r}; it walked for the client (${ms} ms)`,
    failed: (msg) => `lookup failed: ${msg}`,
    node: "Node", node_id: "id", stop_node: "Stop this node", start_node: "Start it again", state: "state", role: "role",
    prefix: "prefix", industry: "industry", region: "region", address: "address", running: "running",
    stopped: "down",
    not_controllable: "This page's server does not run the topology; start it with `handlesim demo --web` or " +
      "`handlesim up --web` to stop nodes from here.",
    has_mirror: (m) => `While it is down, its mirror ${m} answers for it: resolve one of its identifiers with the ` +
      "client cache off to watch the failover.",
    no_mirror: "It has no mirror: while it is down, lookups of its identifiers fail (a topology with [mirrors], " +
      "e.g. `handlesim demo --web`, shows failover).",
  },
  zh: {
    title: "观看一次标识解析", identifier: "标识", mode_iterative: "迭代解析（客户端逐级查询）",
    mode_resolver: "通过递归解析节点", client_cache: "客户端缓存", resolve: "解析",
    root: "根节点", secondary: "二级节点", enterprise: "企业节点", mirror: "镜像", resolver: "递归节点",
    client: "客户端（本页面）", down: "故障", hops: "逐跳过程", values: "标识值", counters: "实时计数",
    tier: "层级", up: "在线", rps: "请求/秒", requests: "请求总数", cache_hits: "缓存命中", cache: "缓存",
    hint: "输入标识后点击“解析”。点击节点可查看详情（并可停止或启动它）。", asked: "查询", from_cache: "由缓存应答，未发送请求",
    no_answer: "无应答", success: "成功", working: "解析中…", client_row: "客户端缓存（本页面）",
    summary: (n, ms) => `网络请求 ${n} 次，共 ${ms} 毫秒`,
    summary_cache: (ms) => `0 次请求：全部由缓存应答（${ms} 毫秒）`,
    via: (r, ms) => `向 ${r} 发送一次请求，由它代为逐级查询（${ms} 毫秒）`,
    failed: (msg) => `解析失败：${msg}`,
    node: "节点", node_id: "名称", stop_node: "停止此节点", start_node: "重新启动", state: "状态", role: "角色",
    prefix: "前缀", industry: "行业", region: "地区", address: "地址", running: "运行中",
    stopped: "故障",
    not_controllable: "本页面的服务器不运行该拓扑；用 `handlesim demo --web` 或 `handlesim up --web` 启动，" +
      "即可在此停止节点。",
    has_mirror: (m) => `它停机时由镜像 ${m} 代为应答：关闭客户端缓存后解析它的标识，即可看到故障切换。`,
    no_mirror: "它没有镜像：停机期间其标识无法解析（带 [mirrors] 的拓扑，如 `handlesim demo --web`，可演示故障切换）。",
  },
};

const state = {
  lang: "en", nodes: [], byId: new Map(), pos: new Map(), radius: new Map(), view: null, busy: false,
  many: false, counters: null, controllable: false, selected: null,
};
const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[state.lang][key];

function el(tag, attrs, parent) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- layout --------------------------------------------------------------------------------------------------

function layout(nodes) {
  const pos = new Map();
  const radius = new Map();
  const labels = new Map();  // secondary id -> where its name goes (outside its enterprises when there are many)
  const roots = nodes.filter((n) => n.role === "root");
  const secondaries = nodes.filter((n) => n.role === "secondary" && !n.mirror_of)
    .sort((a, b) => (a.industry || "").localeCompare(b.industry || "") || a.prefix.localeCompare(b.prefix));
  const enterprises = nodes.filter((n) => n.role === "enterprise" && !n.mirror_of);
  const many = enterprises.length > MANY_ENTERPRISES;
  const children = new Map(secondaries.map((s) => [s.id, []]));
  for (const e of enterprises) (children.get(e.parent) || []).push(e);
  const spacing = many ? 10 : 80;
  const ring = Math.max(170, (secondaries.length * 70) / (2 * Math.PI));
  const weight = (s) => Math.max(1, children.get(s.id).length);
  const total = secondaries.reduce((sum, s) => sum + weight(s), 0) || 1;
  let angle = -Math.PI / 2;
  let outer = ring + 40;
  let upright = 0;  // labels above or below the ring alternate in height so neighbours do not overlap
  for (const s of secondaries) {
    const span = (2 * Math.PI * weight(s)) / total;
    const mid = angle + span / 2;
    pos.set(s.id, polar(ring, mid));
    radius.set(s.id, many ? 9 : 12);
    const kids = children.get(s.id);
    let r = ring + (many ? 60 : 120);
    let placed = 0;
    while (placed < kids.length) {
      const room = Math.max(1, Math.floor((r * span * 0.85) / spacing));
      const row = kids.slice(placed, placed + room);
      const step = row.length > 1 ? Math.min(span * 0.85 / (row.length - 1), spacing / r) : 0;
      row.forEach((e, i) => {
        pos.set(e.id, polar(r, mid + (i - (row.length - 1) / 2) * step));
        radius.set(e.id, many ? 3.5 : 9);
      });
      placed += row.length;
      outer = Math.max(outer, r);
      r += many ? spacing : 70;
    }
    const c = Math.cos(mid);
    const stagger = Math.abs(c) < 0.3 ? 22 * (upright++ % 2) : 0;
    const rim = polar(Math.max(r, ring + 60) + 8 + stagger, mid);
    labels.set(s.id, { ...rim, anchor: Math.abs(c) < 0.3 ? "middle" : c > 0 ? "start" : "end",
      dy: Math.sin(mid) < 0 && Math.abs(c) < 0.3 ? -14 : 4 });
    angle += span;
  }
  roots.forEach((n, i) => {
    pos.set(n.id, roots.length === 1 ? { x: 0, y: 0 } : polar(48, -Math.PI / 2 + (2 * Math.PI * i) / roots.length));
    radius.set(n.id, 16);
  });
  for (const m of nodes.filter((n) => n.mirror_of)) {
    const primary = pos.get(m.mirror_of) || { x: 0, y: 0 };
    const length = Math.hypot(primary.x, primary.y) || 1;
    const push = many ? 5 : 26;
    pos.set(m.id, { x: primary.x * (1 + push / length), y: primary.y * (1 + push / length) });
    radius.set(m.id, many ? 2.5 : 6);
  }
  const side = -(outer + (many ? 230 : 170));
  nodes.filter((n) => n.role === "resolver").forEach((n, i) => {
    pos.set(n.id, { x: side, y: -70 - i * 60 });
    radius.set(n.id, 14);
  });
  pos.set("client", { x: side, y: 90 });
  radius.set("client", 14);
  return { pos, radius, labels, many, outer };
}

function polar(r, a) {
  return { x: r * Math.cos(a), y: r * Math.sin(a) };
}

// ---- drawing -------------------------------------------------------------------------------------------------

function kindOf(node) {
  return node.mirror_of ? "mirror" : node.role;
}

function draw() {
  const svg = $("map");
  const { pos, radius, labels, many } = layout(state.nodes);
  Object.assign(state, { pos, radius, labels, many });
  for (const id of ["edges", "nodes", "labels", "trace-layer", "movers"]) $(id).replaceChildren();
  defs(svg);
  const roots = state.nodes.filter((n) => n.role === "root");
  for (const n of state.nodes) {
    const p = pos.get(n.id);
    if (n.mirror_of) line(pos.get(n.mirror_of), p, "edge mirror-link");
    else if (n.role === "secondary") for (const r of roots) line(pos.get(r.id), p, "edge");
    else if (n.role === "enterprise" && pos.get(n.parent)) line(pos.get(n.parent), p, "edge");
  }
  for (const n of state.nodes) {
    const p = pos.get(n.id);
    const circle = el("circle", { cx: p.x, cy: p.y, r: radius.get(n.id), class: `node ${kindOf(n)}${n.up ? "" : " down"}`,
      "data-node": n.id }, $("nodes"));
    el("title", {}, circle).textContent = `${n.id} (${n.role}${n.prefix ? ", " + n.prefix : ""}` +
      `${n.industry ? ", " + n.industry : ""}${n.region ? ", " + n.region : ""})`;
    label(n, p);
  }
  const client = pos.get("client");
  el("circle", { cx: client.x, cy: client.y, r: 14, class: "node client", "data-node": "client" }, $("nodes"));
  text(client.x, client.y + 30, t("client"), "label client-label");
  fit();
}

function defs(svg) {
  if (svg.querySelector("defs")) return;
  const d = el("defs", {}, null);
  svg.insertBefore(d, svg.firstChild);
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "6",
    markerHeight: "6", orient: "auto-start-reverse" }, d);
  el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#d98a00" }, marker);
}

function line(a, b, cls) {
  if (!a || !b) return;
  el("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: cls }, $("edges"));
}

function text(x, y, content, cls, anchor) {
  const node = el("text", { x, y, class: cls, "text-anchor": anchor || "middle" }, $("labels"));
  node.textContent = content;
  return node;
}

function label(n, p) {
  const r = state.radius.get(n.id);
  if (n.role === "root") text(p.x, p.y - r - 6, n.id, "label");
  else if (n.role === "resolver") text(p.x, p.y - r - 6, n.id, "label");
  else if (n.role === "secondary" && !n.mirror_of && state.many) {
    const at = state.labels.get(n.id);
    text(at.x, at.y + at.dy, n.industry || n.id, "label", at.anchor);
    text(at.x, at.y + at.dy + 12, n.prefix, "label tier", at.anchor);
  } else if (n.role === "secondary" && !n.mirror_of) {
    const inward = Math.hypot(p.x, p.y) || 1;
    const lx = p.x * (1 - 30 / inward);
    const ly = p.y * (1 - 30 / inward);
    text(lx, ly, n.id, "label");
    if (n.industry) text(lx, ly + 13, `${n.prefix} · ${n.industry}`, "label tier");
  } else if (n.role === "enterprise" && !n.mirror_of && !state.many) {
    const out = Math.hypot(p.x, p.y) || 1;
    text(p.x * (1 + 44 / out), p.y * (1 + 44 / out) + 4, n.prefix, "label small");
  }
}

// ---- zoom and pan --------------------------------------------------------------------------------------------

function fit() {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const p of state.pos.values()) {
    x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y);
  }
  const margin = state.many ? 150 : 95;
  setView({ x: x0 - margin, y: y0 - margin, w: x1 - x0 + 2 * margin, h: y1 - y0 + 2 * margin });
}

function setView(v) {
  state.view = v;
  $("map").setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
}

function zoomAt(factor, px, py) {
  const v = state.view;
  const w = Math.min(Math.max(v.w * factor, 40), 200000);
  const k = w / v.w;
  setView({ x: px - (px - v.x) * k, y: py - (py - v.y) * k, w, h: v.h * k });
}

function svgPoint(evt) {
  const svg = $("map");
  const point = svg.createSVGPoint();
  point.x = evt.clientX; point.y = evt.clientY;
  return point.matrixTransform(svg.getScreenCTM().inverse());
}

function unitsPerPixel() {
  const svg = $("map");
  return Math.max(state.view.w / svg.clientWidth, state.view.h / svg.clientHeight);
}

function setUpZoom() {
  const svg = $("map");
  svg.addEventListener("wheel", (evt) => {
    evt.preventDefault();
    const p = svgPoint(evt);
    zoomAt(Math.exp(evt.deltaY * 0.0015), p.x, p.y);
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (evt) => {
    drag = { x: evt.clientX, y: evt.clientY, view: { ...state.view }, scale: unitsPerPixel() };
    svg.classList.add("panning");
    svg.setPointerCapture(evt.pointerId);
  });
  svg.addEventListener("pointermove", (evt) => {
    if (!drag) return;
    setView({ ...drag.view, x: drag.view.x - (evt.clientX - drag.x) * drag.scale,
      y: drag.view.y - (evt.clientY - drag.y) * drag.scale });
  });
  const end = () => { drag = null; svg.classList.remove("panning"); };
  svg.addEventListener("pointerup", (evt) => {
    const clicked = drag && Math.hypot(evt.clientX - drag.x, evt.clientY - drag.y) < 4;
    end();
    if (!clicked) return;
    const hit = document.elementFromPoint(evt.clientX, evt.clientY);
    const id = hit && hit.dataset ? hit.dataset.node : undefined;
    if (id && state.byId.has(id)) selectNode(id);
  });
  svg.addEventListener("pointercancel", end);
  const centre = () => ({ x: state.view.x + state.view.w / 2, y: state.view.y + state.view.h / 2 });
  $("zoom-in").onclick = () => { const c = centre(); zoomAt(0.7, c.x, c.y); };
  $("zoom-out").onclick = () => { const c = centre(); zoomAt(1 / 0.7, c.x, c.y); };
  $("zoom-fit").onclick = fit;
}

// ---- a lookup, hop by hop ------------------------------------------------------------------------------------

async function runLookup(evt) {
  evt.preventDefault();
  if (state.busy) return;
  const handle = $("handle").value.trim();
  const mode = $("mode").value;
  state.busy = true;
  document.body.dataset.lookup = "running";
  $("resolve").disabled = true;
  setStatus(t("working"));
  $("hops").replaceChildren();
  $("values").tBodies[0].replaceChildren();
  $("trace-layer").replaceChildren();
  for (const c of document.querySelectorAll(".node.asked")) c.classList.remove("asked");
  try {
    const reply = await fetch("/api/lookup", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ handle, mode, cache: $("use-cache").checked }) });
    const view = await reply.json();
    if (!reply.ok) throw new Error(view.error || `HTTP ${reply.status}`);
    await animateLookup(view);
    showValues(view);
    setStatus(view.ok ? summary(view) : t("failed")(view.message), !view.ok);
  } catch (err) {
    setStatus(t("failed")(err.message), true);
  } finally {
    state.busy = false;
    $("resolve").disabled = false;
    document.body.dataset.lookup = "done";
  }
}

function summary(view) {
  const ms = view.elapsed_ms.toFixed(2);
  return view.upstream_hops === 0 ? t("summary_cache")(ms) : t("summary")(view.upstream_hops, ms);
}

async function animateLookup(view) {
  const slowest = Math.max(0.001, ...view.hops.map((h) => h.duration_ms));
  let asker = "client";
  if (view.mode === "resolver") {
    const intro = html("li", { class: "intro" });
    intro.append(html("div", { class: "hop-head" }, t("via")(view.asked, view.elapsed_ms.toFixed(2))));
    $("hops").append(intro);
    await travel("client", view.asked, 1, "");
    asker = view.asked;
  }
  for (const hop of view.hops) {
    const target = hop.cache_hit || !state.pos.has(hop.node) ? asker : hop.node;
    await travel(asker, target, hop.number, hop.failed ? "failed" : hop.cache_hit ? "cache" : "");
    showHop(hop, slowest);
    if (!hop.failed && target !== asker) await move(state.pos.get(target), state.pos.get(asker), HOP_BACK_MS, "back");
  }
  if (view.mode === "resolver") await move(state.pos.get(view.asked), state.pos.get("client"), HOP_BACK_MS, "back");
}

async function travel(from, to, number, cls) {
  const a = state.pos.get(from);
  const b = state.pos.get(to);
  const target = document.querySelector(`circle.node[data-node="${CSS.escape(to)}"]`);
  if (from !== to) {
    const bend = curve(a, b, state.radius.get(to) || 8);
    el("path", { d: bend.d, class: `trace ${cls}` }, $("trace-layer"));
    const n = el("text", { x: bend.mx, y: bend.my, class: "trace-number", "text-anchor": "middle" }, $("trace-layer"));
    n.textContent = String(number);
    await move(a, b, HOP_FORWARD_MS, "");
  } else {
    await sleep(HOP_FORWARD_MS / 2);
  }
  if (target) {
    target.classList.add("asked");
    target.classList.remove("flash");
    void target.getBBox();
    target.classList.add("flash");
  }
}

function curve(a, b, stopShort) {
  // a gentle bend, so a request and the next one along the same pair of nodes do not overlap
  const dx = b.x - a.x, dy = b.y - a.y;
  const length = Math.hypot(dx, dy) || 1;
  const mx = (a.x + b.x) / 2 - (dy / length) * length * 0.12;
  const my = (a.y + b.y) / 2 + (dx / length) * length * 0.12;
  const ex = b.x - ((b.x - mx) / Math.hypot(b.x - mx, b.y - my)) * (stopShort + 3);
  const ey = b.y - ((b.y - my) / Math.hypot(b.x - mx, b.y - my)) * (stopShort + 3);
  return { d: `M ${a.x} ${a.y} Q ${mx} ${my} ${ex} ${ey}`, mx: (a.x + 2 * mx + b.x) / 4, my: (a.y + 2 * my + b.y) / 4 };
}

function move(a, b, ms, cls) {
  if (!a || !b) return Promise.resolve();
  const dot = el("circle", { cx: a.x, cy: a.y, r: state.many ? 6 : 7, class: `mover ${cls}` }, $("movers"));
  const started = performance.now();
  return new Promise((resolve) => {
    function frame(now) {
      const f = Math.min(1, (now - started) / ms);
      const e = f < 0.5 ? 2 * f * f : 1 - Math.pow(-2 * f + 2, 2) / 2;
      dot.setAttribute("cx", a.x + (b.x - a.x) * e);
      dot.setAttribute("cy", a.y + (b.y - a.y) * e);
      if (f < 1) requestAnimationFrame(frame);
      else { dot.remove(); resolve(); }
    }
    requestAnimationFrame(frame);
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function outcomeWords(outcome) {
  // core/resolution.py words outcomes in English; the Chinese page translates the common ones
  if (outcome === "1 values") outcome = "1 value";
  if (state.lang !== "zh") return outcome;
  return outcome.replace(/^(\d+) values?$/, "$1 个值").replace(/^prefix referral to (.*)$/, "前缀转介（referral）至 $1")
    .replace(/^service referral to (.*)$/, "服务转介至 $1").replace(/^handle not found$/, "标识不存在");
}

function answerText(hop) {
  const outcome = outcomeWords(hop.outcome);
  if (hop.failed) return `${t("no_answer")}: ${shortFailure(hop.outcome)}`;
  if (hop.code === 1 && hop.referral_to.length) return `1 ${t("success")}: ${outcome}, HS_SITE → ${hop.referral_to.join(", ")}`;
  if (hop.code === 1) return `1 ${t("success")}: ${outcome}`;
  return `${hop.code} ${outcome}`;
}

function shortFailure(outcome) {
  let reason = outcome.replace(/^no answer: /, "");
  if (reason.startsWith("http://")) reason = reason.slice(reason.indexOf(": ") + 2);
  return reason.split(" (")[0];
}

function showHop(hop, slowest) {
  const kind = hop.failed ? "failed" : hop.cache_hit ? "cache" : hop.role;
  const li = html("li", { class: `hop ${kind}`, "data-node": hop.node, "data-code": hop.code === null ? "" : hop.code,
    "data-asked": hop.asked, "data-cache-hit": String(hop.cache_hit) });
  const head = html("div", { class: "hop-head" });
  const who = html("span", { class: "hop-node" }, `${hop.number}. ${hop.cache_hit ? t("cache") : hop.node}`);
  const role = state.byId.get(hop.node);
  if (!hop.cache_hit) who.append(html("small", {}, ` ${role ? t(kindOf(role)) || role.role : hop.role}`));
  head.append(who, html("span", { class: "hop-ms" }, `${hop.duration_ms.toFixed(2)} ms`));
  li.append(head, html("div", { class: "hop-asked" }, `${t("asked")} ${hop.asked}`));
  li.append(html("div", { class: `hop-answer${hop.failed ? " failed" : ""}` },
    `← ${answerText(hop)}${hop.cache_hit ? ` (${t("from_cache")})` : ""}`));
  const bar = html("div", { class: "bar" });
  bar.style.width = `${Math.max(2, (100 * hop.duration_ms) / slowest)}%`;
  li.append(bar);
  $("hops").append(li);
}

function showValues(view) {
  const body = $("values").tBodies[0];
  for (const v of view.values) {
    const row = html("tr");
    row.append(html("td", {}, String(v.index)), html("td", {}, v.type), html("td", {}, v.text));
    body.append(row);
  }
}

function setStatus(message, error) {
  $("status").textContent = message;
  $("status").classList.toggle("error", Boolean(error));
}

// ---- one node: details, stop and start ----------------------------------------------------------------------

function selectNode(id) {
  for (const c of document.querySelectorAll(".node.selected")) c.classList.remove("selected");
  const circle = document.querySelector(`circle.node[data-node="${CSS.escape(id)}"]`);
  if (circle) circle.classList.add("selected");
  state.selected = id;
  showNode();
}

function showNode() {
  const n = state.byId.get(state.selected);
  if (!n) return;
  $("node-panel").hidden = false;
  const body = $("node-info").tBodies[0];
  body.replaceChildren();
  const rows = [["node_id", n.id], ["role", t(kindOf(n)) || n.role], ["prefix", n.prefix], ["industry", n.industry],
    ["region", n.region], ["address", n.url], ["state", n.up ? t("running") : t("stopped")]];
  for (const [key, value] of rows) {
    if (!value) continue;
    const row = html("tr");
    row.append(html("th", {}, t(key)), html("td", {}, value));
    body.append(row);
  }
  const button = $("node-toggle");
  button.hidden = !state.controllable;
  button.textContent = n.up ? t("stop_node") : t("start_node");
  button.dataset.action = n.up ? "stop" : "start";
  $("node-note").textContent = state.controllable ? stoppingNote(n) : t("not_controllable");
}

// what stopping this node shows: a failover only where a mirror stands by (roots and resolvers have none to show)
function stoppingNote(n) {
  if (n.mirror_of || (n.role !== "enterprise" && n.role !== "secondary")) return "";
  const mirror = state.nodes.find((m) => m.mirror_of === n.id);
  return mirror ? TEXT[state.lang].has_mirror(mirror.id) : t("no_mirror");
}

async function toggleNode() {
  const n = state.byId.get(state.selected);
  if (!n) return;
  const button = $("node-toggle");
  button.disabled = true;
  try {
    const reply = await fetch(`/api/nodes/${encodeURIComponent(n.id)}/${button.dataset.action}`, { method: "POST" });
    const data = await reply.json();
    if (!reply.ok) throw new Error(data.error || `HTTP ${reply.status}`);
    setUp(n.id, data.up);
  } catch (err) {
    $("node-note").textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

function setUp(id, up) {
  const n = state.byId.get(id);
  if (n) n.up = up;
  const circle = document.querySelector(`circle.node[data-node="${CSS.escape(id)}"]`);
  if (circle) circle.classList.toggle("down", !up);
  if (id === state.selected) showNode();
}

// ---- live counters -------------------------------------------------------------------------------------------

async function refreshCounters() {
  try {
    const reply = await fetch("/api/counters");
    if (reply.ok) showCounters(await reply.json());
  } catch (err) {
    // the page's server is gone (topology stopped): leave the last figures up
  }
  setTimeout(refreshCounters, COUNTERS_EVERY_MS);
}

function showCounters(data) {
  state.counters = data;
  const body = $("counters").tBodies[0];
  body.replaceChildren();
  for (const [tier, c] of Object.entries(data.tiers)) {
    if (!c.nodes) continue;
    const lookups = c.cache_hits + c.cache_misses;
    const ratio = lookups ? ` (${Math.round((100 * c.cache_hits) / lookups)}%)` : "";
    const row = html("tr", { "data-tier": tier });
    row.append(html("td", {}, t(tier) || tier), html("td", {}, `${c.up}/${c.nodes}`),
      html("td", {}, c.requests_per_s.toFixed(1)), html("td", {}, String(c.requests)),
      html("td", {}, `${c.cache_hits}${ratio}`));
    body.append(row);
  }
  const cc = data.client_cache;
  const row = html("tr", { "data-tier": "client" });
  row.append(html("td", {}, t("client_row")), html("td", {}, ""), html("td", {}, ""), html("td", {}, ""),
    html("td", {}, String(cc.hits)));
  body.append(row);
  for (const [id, n] of Object.entries(data.nodes)) {
    const known = state.byId.get(id);
    if (known && known.up !== n.up) setUp(id, n.up);
  }
}

// ---- language and start-up -----------------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-t]")) {
    const value = t(node.dataset.t);
    if (typeof value === "string") node.textContent = value;
  }
  $("lang").textContent = state.lang === "zh" ? "English" : "中文";
  const label = document.querySelector(".client-label");
  if (label) label.textContent = t("client");
  if (state.counters) showCounters(state.counters);
  if (state.selected) showNode();
}

async function start() {
  const reply = await fetch("/api/topology");
  const topology = await reply.json();
  state.nodes = topology.nodes;
  state.byId = new Map(state.nodes.map((n) => [n.id, n]));
  state.controllable = Boolean(topology.controllable);
  $("topology-name").textContent = `${topology.name} · ${state.nodes.length} nodes`;
  const list = $("examples");
  for (const example of topology.examples) list.append(html("option", { value: example }));
  if (topology.examples.length) $("handle").value = topology.examples[0];
  if (new URLSearchParams(location.search).get("lang") === "zh") state.lang = "zh";
  draw();
  applyLanguage();
  setUpZoom();
  $("lookup-form").addEventListener("submit", runLookup);
  $("node-toggle").onclick = toggleNode;
  $("lang").onclick = () => { state.lang = state.lang === "en" ? "zh" : "en"; applyLanguage(); };
  document.body.dataset.ready = "true";
  refreshCounters();
}

start();
