// Crawl console: submit jobs through the JSON API and keep the jobs table live.
// Live progress comes from the server's event stream (/api/v1/crawl/events,
// Server-Sent Events); without EventSource, or when the stream cannot be opened,
// the table is polled once a second while a job runs.
// Everything crawled is hostile input, so data only ever goes into textContent,
// never innerHTML. Without this script the forms still work (server-side POSTs).
"use strict";

(() => {
  const POLL_MS = 1000;
  const FAILURES_SHOWN = 10;
  const API = "/api/v1/crawl";
  const EVENTS = "/api/v1/crawl/events";

  const form = document.getElementById("crawl-form");
  const message = document.getElementById("form-message");
  const table = document.getElementById("jobs");
  const empty = document.getElementById("jobs-empty");
  const template = document.getElementById("job-template");
  const live = document.getElementById("live");
  let timer = null;
  let stream = null;  // the EventSource while it is connected or reconnecting
  let mode = "";  // "sse" while events arrive, "poll" when polling instead

  const fmt = new Intl.NumberFormat("en-US");

  function say(text, kind) {
    message.textContent = text;
    message.classList.toggle("error", kind === "error");
    message.classList.toggle("ok", kind === "ok");
  }

  // The API answers errors as {"error": {"code", "message"}}; show its message.
  async function apiError(resp) {
    try {
      const body = await resp.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) { /* not JSON: fall through */ }
    return `The peer answered ${resp.status} ${resp.statusText}`;
  }

  async function api(method, url, body) {
    const init = { method, headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" };
    if (body instanceof FormData) {
      init.body = body;  // multipart/form-data: the browser sets the boundary
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(url, init);
    if (!resp.ok) throw new Error(await apiError(resp));
    return resp.json();
  }

  function lines(text) {
    return text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s && !s.startsWith("#"));
  }

  function seedFile() {
    const input = form.elements.seeds;
    return input && input.files && input.files.length ? input.files[0] : null;
  }

  function readForm() {
    const f = form.elements;
    const body = { urls: lines(f.urls.value), allow: lines(f.allow.value), deny: lines(f.deny.value), same_site: f.same_site.checked };
    const file = seedFile();
    if (!body.urls.length && !file) throw new Error("Enter at least one seed URL, one per line, or choose a seed list file.");
    for (const [name, label] of [["depth", "Depth"], ["max_pages", "Max pages"], ["delay", "Delay"]]) {
      const raw = f[name].value.trim();
      if (raw === "") continue;
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new Error(`${label} must be a number.`);
      body[name] = n;
    }
    // A seed list file goes up as it is, with the form's fields: the peer reads
    // and checks it (size, UTF-8, one URL per line) and says what is wrong.
    return file ? new FormData(form) : body;
  }

  async function submit(event) {
    event.preventDefault();
    let body;
    try {
      body = readForm();
    } catch (e) {
      say(e.message, "error");
      return;
    }
    const button = document.getElementById("crawl-submit");
    button.disabled = true;
    say("Starting…");
    try {
      const job = await api("POST", API, body);
      say(`Started job ${job.id}.`, "ok");
      form.elements.urls.value = "";
      if (form.elements.seeds) form.elements.seeds.value = "";
      await refresh();
    } catch (e) {
      say(e.message || String(e), "error");
    } finally {
      button.disabled = false;
    }
  }

  function rowFor(job) {
    let row = table.querySelector(`tbody.job[data-job-id="${CSS.escape(job.id)}"]`);
    if (!row) {
      row = template.content.querySelector("tbody.job").cloneNode(true);
      row.id = `job-${job.id}`;
      row.dataset.jobId = job.id;
      for (const f of row.querySelectorAll("form[data-action]")) {
        f.action = `/crawl/${encodeURIComponent(job.id)}/${f.dataset.action}`;
      }
    }
    return row;
  }

  function setField(row, name, text) {
    const el = row.querySelector(`[data-field="${name}"]`);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function update(row, job) {
    const urls = (job.spec && job.spec.urls) || [];
    row.dataset.state = job.state;
    setField(row, "id", job.id);
    setField(row, "seed", urls[0] || "");
    const count = (job.spec && job.spec.url_count) || urls.length;  // events carry only the first few URLs
    setField(row, "more", count > 1 ? `+${count - 1} more` : "");
    setField(row, "state", job.state);
    for (const k of ["queued", "fetched", "indexed", "published", "failed", "skipped"]) setField(row, k, fmt.format(job[k] || 0));
    setField(row, "pages_per_second", (job.pages_per_second || 0).toFixed(2));
    const allowed = {
      pause: job.state === "running",
      resume: job.state === "paused",
      cancel: job.state === "running" || job.state === "paused",
      delete: job.state !== "running" && job.state !== "paused",
    };
    for (const f of row.querySelectorAll("form[data-action]")) f.hidden = !allowed[f.dataset.action];

    const failures = (job.recent_failures || []).slice(-FAILURES_SHOWN).reverse();
    row.querySelector(".failures-row").hidden = failures.length === 0;
    const summary = Object.entries(job.failures || {}).sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ×${n}`).join(", ");
    setField(row, "failure_summary", summary);
    const list = row.querySelector('[data-field="recent_failures"]');
    const key = JSON.stringify(failures.map((f) => [f.url, f.reason, f.time]));
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      list.replaceChildren(...failures.map((f) => {
        const li = document.createElement("li");
        const reason = document.createElement("span");
        reason.className = "reason";
        reason.textContent = f.reason;
        const url = document.createElement("span");
        url.className = "failed-url";
        url.textContent = f.url;
        li.append(reason, " ", url);
        return li;
      }));
    }
  }

  function render(jobs) {
    const header = table.querySelector("thead");
    let previous = header;
    for (const job of jobs) {  // the API lists newest first, as the server does
      const row = rowFor(job);
      update(row, job);
      if (previous.nextElementSibling !== row) previous.after(row);
      previous = row;
    }
    table.hidden = jobs.length === 0;
    empty.hidden = jobs.length !== 0;
  }

  function anyRunning() {
    return table.querySelector('tbody.job[data-state="running"]') !== null;
  }

  function setMode(m, text) {
    mode = m;
    live.dataset.mode = m;
    live.textContent = text;
  }

  async function refresh() {
    clearTimeout(timer);
    timer = null;
    try {
      const data = await api("GET", API);
      render(data.jobs || []);
      if (mode !== "sse") setMode(anyRunning() ? "poll" : "", anyRunning() ? "updating live" : "");
    } catch (e) {
      live.textContent = `could not update: ${e.message || e}`;
    }
    // Poll only without the event stream and while something moves; a paused or
    // finished table stays quiet.
    if (mode !== "sse" && anyRunning()) timer = setTimeout(refresh, POLL_MS);
  }

  function closeStream() {
    if (stream) stream.close();
    stream = null;
  }

  // Server-Sent Events: the peer pushes every job once a second while it changes.
  function connect() {
    if (!window.EventSource || stream) return;
    stream = new EventSource(EVENTS, { withCredentials: true });
    stream.addEventListener("open", () => {
      clearTimeout(timer);
      timer = null;
      setMode("sse", "live");
    });
    stream.addEventListener("message", (event) => {
      try {
        render(JSON.parse(event.data).jobs || []);
      } catch (e) {
        live.textContent = `could not update: ${e.message || e}`;
      }
    });
    // The peer is shutting down: do not reconnect (nothing would answer).
    stream.addEventListener("bye", () => {
      closeStream();
      setMode("", "the peer stopped; reload the page when it is back");
    });
    stream.addEventListener("error", () => {
      // CONNECTING: the browser reconnects by itself (the peer ends a stream after
      // an hour). CLOSED: the stream is refused (say, 403): poll instead.
      if (stream && stream.readyState === EventSource.CLOSED) {
        closeStream();
        setMode("", "");
        refresh();
      } else if (mode === "sse") {
        setMode("", "reconnecting…");
      }
    });
  }

  async function action(event) {
    const f = event.target.closest("form[data-action]");
    if (!f) return;
    event.preventDefault();
    const id = f.closest("tbody.job").dataset.jobId;
    const button = f.querySelector("button");
    button.disabled = true;
    try {
      if (f.dataset.action === "delete") {
        await api("DELETE", `${API}/${encodeURIComponent(id)}`);
        f.closest("tbody.job").remove();
        return;
      }
      await api("POST", `${API}/${encodeURIComponent(id)}/${f.dataset.action}`);
    } catch (e) {
      say(e.message || String(e), "error");
    } finally {
      button.disabled = false;
    }
    await refresh();
  }

  form.addEventListener("submit", submit);
  table.addEventListener("submit", action);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && mode !== "sse" && anyRunning()) refresh();
  });
  window.addEventListener("pagehide", closeStream);
  if (window.EventSource) connect();
  else if (anyRunning()) timer = setTimeout(refresh, POLL_MS);
})();
