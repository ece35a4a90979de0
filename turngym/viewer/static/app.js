// turngym view: the list of trajectories, one trajectory as a conversation with its credit, charts.
// Plain JavaScript, no dependencies. Routes: #/ (list), #/t/ID (a trajectory), #/charts, #/problems.
"use strict";

const PAGE = 50;
const state = { offset: 0, total: 0, filters: {}, selected: null };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

function outcome(item) {
  return el("span", { class: item.won ? "won" : "lost", text: item.won ? "won" : item.stop_reason });
}

function fillSelect(name, values) {
  const select = $(`#filters [name=${name}]`);
  for (const value of values) select.append(el("option", { value: String(value), text: String(value) }));
}

async function loadSummary() {
  const summary = await getJSON("/api/summary");
  $("#source").textContent = `${summary.trajectories} trajectories in ${summary.files.length} file(s)`;
  fillSelect("env", summary.envs);
  fillSelect("iteration", summary.iterations);
  fillSelect("stop_reason", summary.stop_reasons);
  if (summary.problems) {
    const link = $("#problems");
    link.hidden = false;
    link.textContent = `${summary.problems} malformed line(s)`;
  }
}

function query() {
  const params = new URLSearchParams({ offset: state.offset, limit: PAGE });
  for (const [key, value] of Object.entries(state.filters)) if (value !== "") params.set(key, value);
  return params.toString();
}

async function loadList() {
  const items = $("#items");
  let page;
  try {
    page = await getJSON(`/api/trajectories?${query()}`);
  } catch (error) {
    items.replaceChildren(el("li", { class: "group-head", text: error.message }));
    return;
  }
  state.total = page.total;
  const last = Math.min(page.offset + page.items.length, page.total);
  $("#range").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "no matches";
  const rows = [];
  let group = undefined;
  for (const item of page.items) {
    const key = item.group ? `${item.iteration}/${item.group.key}` : null;
    if (key !== group && item.group) {
      rows.push(el("li", { class: "group-head",
        text: `iteration ${item.iteration ?? "–"} · group ${item.group.key} · task ${item.task_id} · ` +
              `${item.group.wins}/${item.group.size} won` }));
    }
    group = key;
    const row = el("li", { class: "traj-item", "data-id": item.id, onclick: () => { location.hash = `#/t/${item.id}`; } },
      el("span", { class: "tid", text: `#${item.id}` }), outcome(item),
      el("span", { text: `return ${fmt(item.return, 2)}` }),
      el("span", { text: `${item.turns} turns` }),
      item.branched ? el("span", { class: "badge branch", text: "branch" }) : null);
    if (item.id === state.selected) row.classList.add("selected");
    rows.push(row);
  }
  items.replaceChildren(...rows);
}

function heatColour(token, mode) {
  if (mode === "entropy") {
    if (token.entropy === null) return "transparent";
    const t = Math.min(token.entropy / 3, 1); // 3 nats and above: full colour
    return `rgba(142, 68, 173, ${0.1 + 0.7 * t})`;
  }
  if (token.logprob === null) return "transparent";
  const p = Math.exp(token.logprob);
  return `rgba(230, 57, 70, ${0.75 * (1 - p)})`; // likely tokens pale, unlikely ones red
}

function tokenView(turn) {
  const mode = $("#heat").value;
  if (!turn.tokens.length) return el("div", { class: "action", text: turn.action });
  const line = el("div", { class: "action" });
  for (const token of turn.tokens) {
    const tip = `log p ${fmt(token.logprob)} · entropy ${fmt(token.entropy)}`;
    line.append(el("span", { class: "tok", title: tip, style: `background:${heatColour(token, mode)}`, text: token.text }));
  }
  return line;
}

function linkList(cls, label, entry, self) {
  if (!entry) return null;
  const box = el("div", { class: cls }, el("span", { text: `${label} ${entry.size} step(s): ` }));
  for (const member of entry.members) {
    const here = member.id === self.id && member.turn === self.turn;
    box.append(here
      ? el("span", { class: "this", text: `#${member.id}·t${member.turn} (this) ` })
      : el("a", { class: "member", href: `#/t/${member.id}/${member.turn}`, text: `#${member.id}·t${member.turn}` }), " ");
  }
  if (entry.members.length < entry.size) box.append(el("span", { text: `… ${entry.size - entry.members.length} more` }));
  return box;
}

function turnView(traj, turn) {
  const classes = ["turn"];
  if (turn.parse_error) classes.push("parse-failure");
  if (turn.invalid_action) classes.push("invalid");
  if (turn.branch_point) classes.push("branch-point");
  const adv = turn.advantage;
  const head = el("div", { class: "turn-head" },
    el("b", { text: `turn ${turn.index}` }),
    el("span", { text: `reward ${fmt(turn.reward, 2)}` }),
    turn.shaped_reward !== null && turn.shaped_reward !== turn.reward ? el("span", { text: `shaped ${fmt(turn.shaped_reward, 2)}` }) : null,
    adv === null ? null : el("span", { class: `advantage ${adv >= 0 ? "pos" : "neg"}`, text: `advantage ${fmt(adv, 4)}` }),
    turn.anchor ? el("span", { class: "legend", text: `anchor ${turn.anchor}` }) : null,
    turn.parse_error ? el("span", { class: "badge bad", text: "parse failure" }) : null,
    turn.invalid_action ? el("span", { class: "badge warn", text: "invalid action" }) : null,
    turn.finish_reason === "length" ? el("span", { class: "badge", text: "cut at max tokens" }) : null,
    turn.branch_point ? el("span", { class: "badge branch", text: "ARPO branch point" }) : null);
  const self = { id: traj.id, turn: turn.index };
  const edge = turn.salt_edge;
  return el("article", { class: classes.join(" "), id: `turn-${turn.index}` }, head,
    el("pre", { class: "observation", text: turn.observation }),
    tokenView(turn),
    linkList("step-group", `step group #${turn.step_group?.id} (same anchor state):`, turn.step_group, self),
    edge ? linkList("salt-edge", `SALT edge #${edge.id} (node ${edge.node} → ${edge.next === 0 ? "end" : edge.next - 1}):`, edge, self) : null);
}

async function showTrajectory(id, turn = null) {
  state.selected = id;
  document.querySelectorAll(".traj-item").forEach((row) => row.classList.toggle("selected", Number(row.dataset.id) === id));
  const detail = $("#detail");
  let traj;
  try {
    traj = await getJSON(`/api/trajectories/${id}`);
  } catch (error) {
    detail.replaceChildren(el("p", { class: "lost", text: error.message }));
    return;
  }
  const meta = el("div", { class: "meta" });
  const fields = [["env", traj.env], ["task", traj.task_id], ["iteration", traj.iteration ?? "–"],
    ["policy version", traj.policy_version ?? "–"], ["return", fmt(traj.return, 3)],
    ["stop reason", traj.stop_reason], ["estimator", traj.estimator ?? "–"], ["file", `${traj.file}:${traj.line}`]];
  for (const [key, value] of fields) meta.append(el("span", {}, el("b", { text: `${key} ` }), String(value)));
  const members = el("div", { class: "members" }, el("span", { text: "group: " }));
  for (const m of traj.group_members) {
    members.append(m.id === traj.id
      ? el("b", { text: `#${m.id} ` })
      : el("a", { href: `#/t/${m.id}`, class: m.won ? "won" : "lost", text: `#${m.id} (${fmt(m.return, 2)})` }));
  }
  const branch = traj.branch
    ? el("p", { class: "badge branch", text: `ARPO branch: parent ${traj.branch.parent}, branched at turn ${traj.branch.point}` })
    : null;
  const parts = [
    el("h2", {}, `Trajectory #${traj.id} `, outcome(traj)), meta, members, branch,
    el("p", { class: "legend", text: "Token colour: red = unlikely under the sampling policy (log-prob), or purple = high entropy. Hover a token for its numbers." }),
    ...traj.turns.map((turn) => turnView(traj, turn))];
  detail.replaceChildren(...parts.filter((part) => part !== null));
  const target = turn === null ? null : document.getElementById(`turn-${turn}`);
  if (target) {
    target.classList.add("focus");
    target.scrollIntoView({ block: "center" });
  } else {
    detail.scrollTop = 0;
  }
}

async function showCharts() {
  const box = $("#charts");
  const { charts, note } = await getJSON("/api/charts");
  box.replaceChildren(...(charts.length
    ? charts.map((c) => el("figure", {}, el("img", { src: c.url, alt: c.name }), el("figcaption", { text: c.name })))
    : [el("p", { class: "hint", text: note || "No metrics.jsonl next to these trajectories: no charts." })]));
}

async function showProblems() {
  const box = $("#problem-list");
  const { items } = await getJSON("/api/problems");
  box.replaceChildren(el("h2", { text: "Malformed lines (not served)" }),
    el("ul", {}, ...items.map((p) => el("li", { text: `${p.file} line ${p.line}: ${p.error}` }))));
}

function route() {
  const hash = location.hash || "#/";
  const charts = hash === "#/charts";
  const problems = hash === "#/problems";
  $("#browse").hidden = charts || problems;
  $("#charts").hidden = !charts;
  $("#problem-list").hidden = !problems;
  if (charts) return showCharts();
  if (problems) return showProblems();
  const match = hash.match(/^#\/t\/(\d+)(?:\/(\d+))?$/);
  if (match) return showTrajectory(Number(match[1]), match[2] === undefined ? null : Number(match[2]));
  return null;
}

$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  state.filters = Object.fromEntries(new FormData(event.target).entries());
  state.offset = 0;
  loadList();
});
$("#heat").addEventListener("change", () => { if (state.selected !== null) showTrajectory(state.selected); });
$("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadList(); });
$("#next").addEventListener("click", () => {
  if (state.offset + PAGE < state.total) { state.offset += PAGE; loadList(); }
});
window.addEventListener("hashchange", route);
loadSummary().then(loadList).then(route).catch((error) => {
  $("#detail").replaceChildren(el("p", { class: "lost", text: error.message }));
});
