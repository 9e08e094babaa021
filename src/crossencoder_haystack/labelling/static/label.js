// rerank label: the page. Talks only to the server that served it; texts are inserted as text, never as HTML.
"use strict";

const GRADE_NAMES = { 0: "not relevant", 1: "partly relevant", 2: "relevant", 3: "highly relevant" };
const token = new URLSearchParams(window.location.search).get("token") || "";
const client = newClientId();

const state = {
  session: null, // GET /api/session
  index: 0, // position of the current query in session.queries
  query: null, // GET /api/queries/{id}: {query_id, query, candidates: [...]}
  order: [], // candidate positions in display order
  focus: 0, // position in `order`
  undo: [], // this tab's judgements, newest last: {query_id, document_id, previous}
  writes: Promise.resolve(), // this tab's judgements are sent one after the other, in the order made
  loading: 0,
};

const $ = (id) => document.getElementById(id);

function newClientId() {
  const key = "rerank-label-client";
  let id = window.sessionStorage.getItem(key);
  if (!id) {
    id = window.crypto && window.crypto.randomUUID ? window.crypto.randomUUID() : String(Math.random()).slice(2);
    window.sessionStorage.setItem(key, id);
  }
  return id;
}

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + token, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.status + " " + response.statusText;
    throw new Error(detail);
  }
  return body;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function formatNumber(value) {
  return Number(value).toLocaleString("en-US");
}

function showProgress(progress) {
  const share = (part, whole) => (whole > 0 ? Math.min(100, (100 * part) / whole) : 0) + "%";
  $("queries-label").textContent =
    `Queries: ${progress.queries_done} of ${progress.queries} fully judged (${progress.queries_started} started)`;
  $("queries-bar").style.width = share(progress.queries_done, progress.queries);
  $("pairs-label").textContent = `Judged pairs: ${formatNumber(progress.judged)} of ${formatNumber(progress.pairs)} candidates (${progress.relevant} relevant)`;
  $("pairs-bar").style.width = share(progress.judged, progress.pairs);
  const [low, high] = progress.guide;
  const where = progress.judged < low ? "below" : progress.judged <= high ? "within" : "above";
  $("guide-label").textContent =
    `${formatNumber(progress.judged)} judged pairs: ${where} the guide of ${formatNumber(low)}–${formatNumber(high)} for a first model`;
  $("guide-bar").style.width = share(progress.judged, high);
}

// Text with the best passage and the query's words marked: flat segments between all span boundaries.
function renderText(container, text, terms, passage) {
  container.textContent = "";
  const cuts = new Set([0, text.length]);
  for (const [start, end] of terms) { cuts.add(start); cuts.add(end); }
  if (passage) { cuts.add(passage[0]); cuts.add(passage[1]); }
  const points = [...cuts].filter((point) => point >= 0 && point <= text.length).sort((a, b) => a - b);
  for (let i = 0; i + 1 < points.length; i++) {
    const [start, end] = [points[i], points[i + 1]];
    const piece = text.slice(start, end);
    const inTerm = terms.some(([s, e]) => s <= start && end <= e);
    const inPassage = passage && passage[0] <= start && end <= passage[1];
    if (!inTerm && !inPassage) {
      container.appendChild(document.createTextNode(piece));
      continue;
    }
    const node = document.createElement(inTerm ? "mark" : "span");
    if (inTerm) node.classList.add("term");
    if (inPassage) node.classList.add("passage");
    node.textContent = piece;
    container.appendChild(node);
  }
}

function candidateElement(candidate, position) {
  const item = $("candidate-template").content.firstElementChild.cloneNode(true);
  item.dataset.position = String(position);
  item.dataset.documentId = candidate.document_id;
  item.querySelector(".rank").textContent = "#" + candidate.rank;
  item.querySelector(".title").textContent = candidate.title || "(no title)";
  item.querySelector(".doc-id").textContent = candidate.document_id;
  if (candidate.model_rank !== null && candidate.model_rank !== undefined) {
    const score = candidate.model_score === null ? "no score" : Number(candidate.model_score).toFixed(3);
    item.querySelector(".model-says").textContent = `model says: #${candidate.model_rank} (${score})`;
  }
  renderText(item.querySelector(".text"), candidate.text, candidate.terms || [], candidate.passage);
  item.querySelectorAll(".grades button").forEach((button) => {
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      setFocus(state.order.indexOf(position));
      judge(position, Number(button.dataset.grade), false);
    });
  });
  item.addEventListener("click", () => setFocus(state.order.indexOf(position)));
  showGrade(item, candidate.grade, "");
  return item;
}

function showGrade(item, grade, saveState, message = "") {
  if (grade === null || grade === undefined) delete item.dataset.grade;
  else item.dataset.grade = String(grade);
  item.dataset.state = saveState;
  item.querySelectorAll(".grades button").forEach((button) => {
    button.classList.toggle("chosen", grade !== null && grade !== undefined && Number(button.dataset.grade) === grade);
    button.classList.remove("pending");
  });
  const label = { saving: "saving…", saved: "saved ✓", error: "NOT saved: " + message }[saveState];
  item.querySelector(".save-state").textContent = label || (grade === null || grade === undefined ? "" : "judged");
}

function itemAt(position) {
  return document.querySelector(`.candidate[data-position="${position}"]`);
}

function displayOrder(candidates) {
  const positions = candidates.map((_, position) => position);
  if ($("order").value !== "disagreement") return positions;
  const gap = (c) => (c.model_rank ? Math.abs(c.model_rank - c.rank) : -1);
  return positions.sort((a, b) => gap(candidates[b]) - gap(candidates[a]) || candidates[a].rank - candidates[b].rank);
}

function renderQuery() {
  const { query, session } = state;
  $("query-text").textContent = query.query;
  $("query-position").textContent = `Query ${state.index + 1} of ${session.queries.length} · ${query.query_id}`;
  const list = $("candidates");
  list.textContent = "";
  state.order = displayOrder(query.candidates);
  for (const position of state.order) list.appendChild(candidateElement(query.candidates[position], position));
  list.querySelectorAll(".candidate").forEach(showPassage);
  const firstOpen = state.order.findIndex((position) => query.candidates[position].grade === null);
  setFocus(firstOpen >= 0 ? firstOpen : 0);
  showProgress(query.progress);
}

function setFocus(orderIndex) {
  if (!state.order.length) return;
  state.focus = Math.max(0, Math.min(state.order.length - 1, orderIndex));
  document.querySelectorAll(".candidate.focused").forEach((item) => item.classList.remove("focused"));
  const item = itemAt(state.order[state.focus]);
  item.classList.add("focused");
  // The sticky header covers the top of the page: keep the focused candidate below it.
  const header = document.querySelector("header").getBoundingClientRect().bottom;
  const box = item.getBoundingClientRect();
  const footer = window.innerHeight - document.querySelector("footer").getBoundingClientRect().height;
  if (box.top < header) window.scrollBy(0, box.top - header - 8);
  else if (box.bottom > footer) window.scrollBy(0, Math.min(box.bottom - footer + 8, box.top - header - 8));
  showPassage(item);
}

// Scroll a candidate's text to its best passage (the model's), or else to the first word of the query.
function showPassage(item) {
  const mark = item.querySelector(".text .passage") || item.querySelector(".text mark.term");
  if (mark) item.querySelector(".text").scrollTop = Math.max(0, mark.offsetTop - 24);
}

async function loadQuery(index, focusDocument = null) {
  const queries = state.session.queries;
  state.index = Math.max(0, Math.min(queries.length - 1, index));
  const queryId = queries[state.index].query_id;
  history.replaceState(null, "", window.location.pathname + window.location.search + "#q=" + encodeURIComponent(queryId));
  state.loading += 1;
  setStatus(state.session.model ? "Retrieving and scoring the candidates…" : "Retrieving the candidates…");
  try {
    const query = await api("/api/queries/" + encodeURIComponent(queryId));
    if (queries[state.index].query_id !== queryId) return; // the expert has moved on meanwhile
    state.query = query;
    renderQuery();
    if (focusDocument !== null) {
      const position = query.candidates.findIndex((c) => c.document_id === focusDocument);
      if (position >= 0) setFocus(state.order.indexOf(position));
    }
    setStatus("");
    prefetch(state.index + 1);
  } catch (error) {
    setStatus("Could not load the query: " + error.message, true);
  } finally {
    state.loading -= 1;
  }
}

function prefetch(index) {
  // Warm the server's cache for the next query (retrieval and model scoring), so that "n" is instant.
  const next = state.session.queries[index];
  if (next) api("/api/queries/" + encodeURIComponent(next.query_id)).catch(() => {});
}

function judge(position, grade, advance) {
  const query = state.query;
  const candidate = query.candidates[position];
  const item = itemAt(position);
  const before = candidate.grade;
  item.querySelectorAll(".grades button").forEach((button) => {
    button.classList.toggle("pending", Number(button.dataset.grade) === grade);
  });
  item.dataset.state = "saving";
  item.querySelector(".save-state").textContent = "saving…";
  if (advance) setFocus(state.focus + 1);
  send(query.query_id, candidate.document_id, grade, (saved) => {
    state.undo.push({ query_id: query.query_id, document_id: candidate.document_id, previous: saved.previous });
  }).then(
    (saved) => {
      if (state.query !== query) return;
      candidate.grade = saved.grade;
      showGrade(itemAt(position), saved.grade, "saved");
      setStatus(`Saved ${candidate.document_id}: ${grade} (${GRADE_NAMES[grade]}).`);
    },
    (error) => {
      if (state.query !== query) return;
      showGrade(itemAt(position), before, "error", error.message);
      setStatus("NOT saved, try again: " + error.message, true);
    },
  );
}

// Judgements of this tab go to the server one at a time, in the order they were made.
function send(queryId, documentId, grade, onSaved) {
  const write = state.writes.then(async () => {
    const saved = await api("/api/judgements", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query_id: queryId, document_id: documentId, grade, client }),
    });
    if (onSaved) onSaved(saved);
    showProgress(saved.progress);
    return saved;
  });
  state.writes = write.catch(() => {});
  return write;
}

async function undo() {
  await state.writes; // a judgement still on its way is the last one, and is what "u" takes back
  const last = state.undo.pop();
  if (!last) {
    setStatus("Nothing to undo in this tab.");
    return;
  }
  const here = state.query && state.query.query_id === last.query_id;
  const position = here ? state.query.candidates.findIndex((c) => c.document_id === last.document_id) : -1;
  if (position >= 0) {
    itemAt(position).dataset.state = "saving";
    itemAt(position).querySelector(".save-state").textContent = "undoing…";
  }
  try {
    const saved = await send(last.query_id, last.document_id, last.previous, null);
    const grade = saved.grade === null ? "unjudged" : `${saved.grade} (${GRADE_NAMES[saved.grade]})`;
    setStatus(`Undone: ${last.document_id} is ${grade} again.`);
    const index = state.session.queries.findIndex((q) => q.query_id === last.query_id);
    if (position >= 0 && state.query && state.query.query_id === last.query_id) {
      state.query.candidates[position].grade = saved.grade;
      showGrade(itemAt(position), saved.grade, "saved");
      setFocus(state.order.indexOf(position));
    } else if (index >= 0) {
      await loadQuery(index, last.document_id);
    }
  } catch (error) {
    state.undo.push(last);
    if (position >= 0 && state.query && state.query.query_id === last.query_id) {
      showGrade(itemAt(position), state.query.candidates[position].grade, "error", error.message);
    }
    setStatus("Undo NOT saved: " + error.message, true);
  }
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest && event.target.closest("input, select, textarea")) return;
  if (!state.query) return;
  const key = event.key;
  let handled = true;
  if (key >= "0" && key <= "3" && key.length === 1) judge(state.order[state.focus], Number(key), true);
  else if (key === "j" || key === "ArrowDown") setFocus(state.focus + 1);
  else if (key === "k" || key === "ArrowUp") setFocus(state.focus - 1);
  else if (key === "n") loadQuery(state.index + 1);
  else if (key === "p") loadQuery(state.index - 1);
  else if (key === "u") undo();
  else if (key === "m" && state.session.model) toggleModel(!$("show-model").checked);
  else if (key === "o" && state.session.model) {
    $("order").value = $("order").value === "rank" ? "disagreement" : "rank";
    changeOrder();
  } else handled = false;
  if (handled) event.preventDefault();
}

function toggleModel(show) {
  $("show-model").checked = show;
  document.body.classList.toggle("hide-model", !show);
  window.localStorage.setItem("rerank-label-show-model", show ? "1" : "0");
}

function changeOrder() {
  window.localStorage.setItem("rerank-label-order", $("order").value);
  if (state.query) renderQuery();
}

async function refresh() {
  // Another tab may have judged meanwhile: show the server's grades (last write wins) when this tab comes back.
  if (!state.query || state.loading) return;
  try {
    const query = await api("/api/queries/" + encodeURIComponent(state.query.query_id));
    if (!state.query || state.query.query_id !== query.query_id) return;
    query.candidates.forEach((candidate, position) => {
      const mine = state.query.candidates[position];
      if (mine.grade !== candidate.grade) {
        mine.grade = candidate.grade;
        showGrade(itemAt(position), candidate.grade, "");
      }
    });
    showProgress(query.progress);
  } catch (error) {
    setStatus("Could not refresh: " + error.message, true);
  }
}

async function start() {
  if (!token) {
    setStatus("This page needs its access token: open the full URL that rerank label printed.", true);
    return;
  }
  try {
    state.session = await api("/api/session");
  } catch (error) {
    setStatus("Could not start: " + error.message, true);
    return;
  }
  if (state.session.model) {
    $("model-toggle").hidden = false;
    $("order-toggle").hidden = false;
    toggleModel(window.localStorage.getItem("rerank-label-show-model") !== "0");
    $("order").value = window.localStorage.getItem("rerank-label-order") === "disagreement" ? "disagreement" : "rank";
  } else {
    document.body.classList.add("hide-model");
  }
  showProgress(state.session.progress);
  $("show-model").addEventListener("change", (event) => toggleModel(event.target.checked));
  $("order").addEventListener("change", changeOrder);
  $("previous-query").addEventListener("click", () => loadQuery(state.index - 1));
  $("next-query").addEventListener("click", () => loadQuery(state.index + 1));
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  window.addEventListener("focus", refresh);
  const fromHash = decodeURIComponent((window.location.hash.match(/^#q=(.+)$/) || [])[1] || "");
  const hashed = state.session.queries.findIndex((q) => q.query_id === fromHash);
  await loadQuery(hashed >= 0 ? hashed : state.session.resume);
}

document.addEventListener("DOMContentLoaded", start);
