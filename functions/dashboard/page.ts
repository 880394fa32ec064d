/** The dashboard: one HTML page, its stylesheet and its script, served as they are. */
export const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-sync</title>
<link rel="stylesheet" href="dashboard.css">
<script src="dashboard.js" defer></script>
</head>
<body>
<header><h1>edge-sync</h1><span id="who"></span><button id="signout" hidden>Sign out</button></header>
<main>
  <form id="signin" hidden>
    <h2>Sign in</h2>
    <label>Client id <input name="clientId" autocomplete="username" required></label>
    <label>Client secret <input name="clientSecret" type="password" autocomplete="current-password" required></label>
    <button>Sign in</button>
    <p id="signin-error" role="alert"></p>
  </form>
  <div id="app" hidden>
    <p id="stale" class="warning" role="alert" hidden></p>
    <section id="status" aria-live="polite"></section>
    <section><h2>Devices</h2><div id="failing"></div><div id="devices"></div></section>
    <section id="dlq-section" hidden>
      <h2>Dead-letter queue</h2>
      <div id="dlq"></div>
      <button id="redrive-all" type="button" hidden>Redrive all</button>
      <p id="dlq-result" role="status"></p>
    </section>
    <section><h2>Recent conflicts</h2><div id="conflicts"></div></section>
    <section>
      <h2>Reports</h2>
      <input id="search" type="search" placeholder="Search reports" aria-label="Search reports">
      <div id="reports"></div>
    </section>
    <section id="history-section" hidden><h2>History of <span id="history-title"></span></h2><ol id="history"></ol></section>
    <section id="activity-section" hidden>
      <details id="activity-details"><summary><h2>Activity</h2> who changed who may do what, and who took data out</summary><ol id="activity" reversed></ol></details>
    </section>
  </div>
</main>
</body>
</html>
`;

export const css = `
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
body { margin: 0; }
[hidden] { display: none !important; }
header { display: flex; gap: 1rem; align-items: center; padding: .75rem 1.25rem; background: #14324d; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; flex: 1; }
main { padding: 1rem 1.25rem; max-width: 1200px; margin: 0 auto; }
section { background: #fff; border-radius: 8px; padding: .75rem 1rem; margin-bottom: 1rem; box-shadow: 0 1px 2px #0002; }
h2 { font-size: 1rem; margin: .25rem 0 .75rem; }
summary { cursor: pointer; color: #555; }
summary h2 { display: inline; margin-right: .5rem; color: #1b1f24; }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
.state { font-weight: 600; white-space: nowrap; }
.state.in_sync { color: #17733a; } .state.behind, .state.never_seen { color: #9a6700; }
.state.silent, .state.revoked, .state.failing { color: #b42318; }
.reason { font-weight: normal; color: #57606a; white-space: normal; display: block; }
.warning { background: #fdecea; color: #8a1c13; padding: .5rem .75rem; border-radius: 6px; margin-top: .5rem; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { flex: 1 1 8rem; } .card b { display: block; font-size: 1.4rem; }
.conflict { display: grid; grid-template-columns: 1fr 1fr; gap: .5rem; border-bottom: 1px solid #e3e6ea; padding: .5rem 0; }
.conflict h3 { grid-column: 1 / -1; font-size: .9rem; margin: 0; }
.side { padding: .4rem .6rem; border-radius: 6px; font-size: .85rem; overflow-wrap: anywhere; }
.winner { background: #e7f5ec; } .loser { background: #fbeeee; }
form { display: grid; gap: .6rem; max-width: 24rem; background: #fff; padding: 1rem; border-radius: 8px; }
input { padding: .45rem; font: inherit; } button { padding: .45rem .9rem; font: inherit; cursor: pointer; }
#search { width: 100%; box-sizing: border-box; margin-bottom: .5rem; }
tr.report { cursor: pointer; } tr.report:hover { background: #f0f4f8; }
#history li { margin-bottom: .5rem; font-size: .9rem; }
.erased { color: #57606a; }
@media (max-width: 600px) {
  main { padding: .5rem; }
  table, thead, tbody, tr, th, td { display: block; }
  thead { display: none; }
  tr { border-bottom: 1px solid #e3e6ea; padding: .4rem 0; }
  td { border: 0; padding: .1rem .25rem; }
  td[data-label]::before { content: attr(data-label) ": "; color: #57606a; }
  .conflict { grid-template-columns: 1fr; }
}
`;

export const js = `"use strict";
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 4000;
let names = {};
let query = "";
let selected = null;
let role = null;
let lastGoodAt = null;

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
const show = (v) => esc(typeof v === "string" ? v : JSON.stringify(v));
/** A value, or that an erasure removed it (a null that was not one). */
const value = (v, erased) => (erased ? '<i class="erased">erased</i>' : show(v));
const when = (t) => (t ? new Date(t).toLocaleString() : "never");

/** Replaces a section only when its content changed: refreshing never flickers. */
function render(id, markup) {
  const el = $(id);
  if (el.dataset.markup !== markup) { el.innerHTML = markup; el.dataset.markup = markup; }
}

async function api(path, body) {
  const headers = { authorization: "Bearer " + sessionStorage.getItem("token") };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  if (res.status === 401) { signOut(); throw new Error("signed out"); }
  if (!res.ok) throw new Error(path + ": " + res.status);
  return res.json();
}

const STATES = { in_sync: "in sync", behind: "behind", failing: "failing", silent: "silent", never_seen: "never seen", revoked: "revoked" };

/** The state the API derived, with why when there is something to say. */
function stateCell(d) {
  let reason = "";
  if (d.state === "failing" && d.lastErrorCode) reason = d.lastErrorCode + (d.lastErrorMessage ? ": " + d.lastErrorMessage : "") + " (" + when(d.lastErrorAt) + ")";
  if (d.state === "silent") reason = "since " + when(d.lastSeenAt);
  if (d.state === "behind") reason = (d.accepted - d.applied - d.partial - d.superseded - d.rejected) + " in flight";
  return esc(STATES[d.state] ?? d.state) + (reason ? '<span class="reason">' + esc(reason) + "</span>" : "");
}

/** When the API stops answering, say so, and since when the page shows old data. */
function markStale(failed) {
  const el = $("stale");
  el.hidden = !failed;
  if (failed) el.textContent = "The API is not answering: this page shows data from " + (lastGoodAt ? lastGoodAt.toLocaleString() : "before sign-in") + " and may be out of date.";
}

/** Every item of a paged listing, page by page: a page ends where its items reach the API's size bound. */
async function everyPage(path) {
  const items = [];
  let cursor = "";
  do {
    const page = await api(path + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return { items };
}

async function refresh() {
  let status, devices, members, conflicts, reports, dlq;
  try {
    [status, devices, members, conflicts, reports, dlq] = await Promise.all([
      api("v1/status"), everyPage("v1/devices"), everyPage("v1/members"), api("v1/conflicts?limit=20"),
      api("v1/reports?limit=50" + (query ? "&q=" + encodeURIComponent(query) : "")),
      role === "admin" ? api("v1/dlq") : Promise.resolve(null),
    ]);
  } catch (error) {
    if (sessionStorage.getItem("token")) markStale(true);
    throw error;
  }
  lastGoodAt = new Date();
  markStale(false);
  // Who each device and member is: the audit log and conflicts name them by id.
  names = Object.fromEntries([...devices.items, ...members.items].map((p) => [p.id, p.name]));
  const q = status.queue;
  render("status", '<div class="cards">' +
    '<div class="card">Queue<b>' + q.visible + '</b>waiting, ' + q.inFlight + ' in flight</div>' +
    '<div class="card">Dead letters<b>' + q.dlq + '</b></div>' +
    '<div class="card">Reports<b>' + status.reports + '</b></div>' +
    '<div class="card">Conflicts<b>' + status.conflicts + '</b></div>' +
    '<div class="card">Devices<b>' + status.devices + '</b>last change ' + esc(when(status.lastAppliedAt)) + '</div></div>' +
    (q.dlq > 0 ? '<p class="warning" role="alert">' + q.dlq + ' change(s) in the dead-letter queue: they failed 5 times and need attention.</p>' : ""));
  const failing = devices.items.filter((d) => d.state === "failing");
  render("failing", failing.length === 0 ? "" : '<p class="warning" role="alert">' + failing.length + " device(s) failing: " +
    failing.map((d) => esc(d.name) + " (" + esc(d.lastErrorCode ?? "error") + ")").join(", ") + ". Their changes are not getting through.</p>");
  render("devices", '<table><thead><tr><th>Device</th><th>State</th><th>Scopes</th><th>Agent</th><th>Last push</th><th>Last pull</th><th>Accepted</th><th>Applied</th><th>Partial</th><th>Superseded</th><th>Rejected</th><th>Conflicts</th></tr></thead><tbody>' +
    devices.items.map((d) => {
      const cell = (name, value, extra) => '<td data-label="' + name + '"' + (extra ?? "") + '>' + esc(value) + '</td>';
      return '<tr class="device" data-id="' + esc(d.id) + '">' + cell("Device", d.name) +
        '<td data-label="State" class="state ' + esc(d.state) + '">' + stateCell(d) + '</td>' +
        cell("Scopes", d.scopes.length ? d.scopes.join(", ") : "all") +
        cell("Agent", d.agentVersion ? d.agentVersion + (d.platform ? " (" + d.platform + ")" : "") : "") +
        cell("Last push", when(d.lastPushAt)) + cell("Last pull", when(d.lastPullAt)) + cell("Accepted", d.accepted) +
        cell("Applied", d.applied) + cell("Partial", d.partial) + cell("Superseded", d.superseded) +
        cell("Rejected", d.rejected) + cell("Conflicts", d.conflicts) + '</tr>'; }).join("") + '</tbody></table>');
  $("dlq-section").hidden = !dlq;
  if (dlq) {
    $("redrive-all").hidden = dlq.items.length === 0;
    render("dlq", dlq.items.length === 0 ? "<p>Empty: every change reached the database.</p>" :
      '<table><thead><tr><th>Change</th><th>Report</th><th>Device</th><th>Receives</th><th>Sent</th><th>Why</th><th></th></tr></thead><tbody>' +
      dlq.items.map((m) => '<tr class="dead-letter"><td data-label="Change">' + esc((m.changeId ?? "?").slice(0, 8)) + '</td><td data-label="Report">' + esc((m.reportId ?? "?").slice(0, 8)) +
        '</td><td data-label="Device">' + esc(names[m.deviceId] ?? m.deviceId ?? "") + '</td><td data-label="Receives">' + esc(m.receiveCount) +
        '</td><td data-label="Sent">' + esc(when(m.sentAt)) + '</td><td data-label="Why">' + esc(m.reason) +
        '</td><td><button type="button" class="redrive" data-id="' + esc(m.messageId) + '">Redrive</button></td></tr>').join("") + '</tbody></table>');
  }
  const side = (s, kind) => '<div class="side ' + kind + '"><b>' + kind + '</b>: ' + value(s.value, s.erased) + '<br>' + esc(names[s.deviceId] ?? s.deviceId) + ' · ' + esc(when(Number(s.hlc.slice(0, 15)))) + '</div>';
  render("conflicts", conflicts.items.length === 0 ? "<p>No conflicts.</p>" : conflicts.items.map((c) =>
    '<div class="conflict"><h3>' + esc(c.field) + ' of report ' + esc(c.reportId.slice(0, 8)) + ' · ' + esc(when(c.detectedAt)) + '</h3>' +
    side(c.winner, "winner") + side(c.loser, "loser") + '</div>').join(""));
  render("reports", '<table><thead><tr><th>Report</th><th>Fields</th><th>Updated</th><th>By</th></tr></thead><tbody>' +
    reports.items.map((r) => '<tr class="report" data-id="' + esc(r.id) + '"><td>' + esc(r.id.slice(0, 8)) + (r.scope ? " · " + esc(r.scope) : "") + (r.deleted ? " (deleted)" : "") +
      '</td><td>' + Object.entries(r.fields).map(([k, v]) => esc(k) + ": " + value(v, v === null && (r.erased ?? []).includes(k))).join("<br>") + '</td><td>' + esc(when(r.updatedAt)) +
      '</td><td>' + esc(names[r.updatedBy] ?? r.updatedBy ?? "") + '</td></tr>').join("") + '</tbody></table>' +
    (reports.items.length === 0 ? "<p>No reports match.</p>" : ""));
  if (selected) await showHistory(selected);
  $("activity-section").hidden = !(role === "admin" || role === "auditor");
  if (!$("activity-section").hidden && $("activity-details").open) await showActivity();
}

const ACTIONS = {
  "project.create": "created the project", "device.register": "registered device", "device.scopes": "set the scopes of",
  "device.revoke": "revoked device", "member.add": "added member", "member.revoke": "revoked member",
  "hold.place": "placed a legal hold on report", "hold.lift": "lifted the legal hold on report",
  "retention.set": "set retention", "evidence.export": "exported the evidence of report",
  "dlq.redrive": "put dead-lettered changes back on the queue",
};

/** An activity entry's detail as a reader wants it: scopes by name, redriven changes by their short ids. */
function detail(key, value) {
  if (key === "scopes") return esc(value.length ? value.join(", ") : "all");
  if (key === "changes") return esc(value.map((c) => (c.changeId ?? c.messageId).slice(0, 8)).join(", "));
  return show(value);
}

/** The project's activity log, newest first: its last 100 entries. */
async function showActivity() {
  const { items } = await api("v1/activity?order=newest&limit=100");
  const nameOf = (id) => names[id] ?? id.slice(0, 8);
  render("activity", items.map((e) => '<li class="activity"><b>' + esc(when(e.at)) + '</b> ' +
    esc(e.actor.type === "operator" ? "the operator" : nameOf(e.actor.id)) + ' ' + esc(ACTIONS[e.action] ?? e.action) +
    (e.targetId && e.targetId !== e.projectId ? " " + esc(e.details.name ?? nameOf(e.targetId)) : "") +
    Object.entries(e.details).filter(([k]) => k !== "name" && k !== "admin").map(([k, v]) => " · " + esc(k) + ": " + detail(k, v)).join("") + '</li>').join(""));
}

async function showHistory(id) {
  selected = id;
  const { items } = await everyPage("v1/reports/" + encodeURIComponent(id) + "/history");
  $("history-section").hidden = false;
  $("history-title").textContent = id.slice(0, 8);
  render("history", items.map((h) => h.op === "erase"
    ? '<li class="erasure"><b>' + esc(when(h.appliedAt)) + '</b> erased ' + esc(h.fieldsApplied.join(", ")) + ' by ' +
      esc(names[h.actor.id] ?? h.actor.id) + ' (' + esc(h.reason ?? "") + ')</li>'
    : '<li><b>' + esc(when(h.appliedAt)) + '</b> ' + esc(names[h.actor.id] ?? h.actor.id) + ' · ' + esc(h.op) +
    ' · <span class="outcome">' + esc(h.outcome) + '</span>' + (h.code ? " (" + esc(h.code) + ")" : "") + '<br>' +
    Object.keys(h.after).map((k) => esc(k) + ": " + value(h.before[k], (h.erased ?? []).includes("before:" + k)) + " → " +
      value(h.after[k], (h.erased ?? []).includes("after:" + k))).join("; ") + '</li>').join(""));
}

function signOut() {
  sessionStorage.removeItem("token");
  role = null; lastGoodAt = null; markStale(false);
  $("app").hidden = true; $("signout").hidden = true; $("signin").hidden = false; $("who").textContent = "";
}

async function redrive(messageIds) {
  const { moved } = await api("v1/dlq/redrive", messageIds ? { messageIds } : {});
  $("dlq-result").textContent = moved + " change(s) put back on the queue.";
  await refresh();
}

async function start() {
  const me = await api("v1/me");
  role = me.role;
  $("who").textContent = me.name + " (" + me.role + ")";
  $("signin").hidden = true; $("app").hidden = false; $("signout").hidden = false;
  await refresh();
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const res = await fetch("v1/oauth/token", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ grant_type: "client_credentials", client_id: form.get("clientId"), client_secret: form.get("clientSecret") }) });
  if (!res.ok) { $("signin-error").textContent = "Those credentials were not accepted."; return; }
  sessionStorage.setItem("token", (await res.json()).access_token);
  $("signin-error").textContent = "";
  start().catch(() => {});
});
$("signout").addEventListener("click", signOut);
$("redrive-all").addEventListener("click", () => redrive().catch(() => {}));
$("dlq").addEventListener("click", (event) => {
  const button = event.target.closest("button.redrive");
  if (button) redrive([button.dataset.id]).catch(() => {});
});
let typing;
$("search").addEventListener("input", (event) => {
  clearTimeout(typing);
  typing = setTimeout(() => { query = event.target.value.trim(); refresh().catch(() => {}); }, 250);
});
$("activity-details").addEventListener("toggle", () => {
  if ($("activity-details").open) showActivity().catch(() => {});
});
$("reports").addEventListener("click", (event) => {
  const row = event.target.closest("tr.report");
  if (row) showHistory(row.dataset.id).catch(() => {});
});
setInterval(() => { if (sessionStorage.getItem("token")) refresh().catch(() => {}); }, REFRESH_MS);
if (sessionStorage.getItem("token")) start().catch(() => {}); else signOut();
`;
