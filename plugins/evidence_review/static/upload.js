// The "Submit evidence" page: hash each file at collection (SHA-256, read in slices), then send
// it straight to the evidence store through requests the server signs one at a time: one PUT for
// a small file, parts for a large one (each part with its own SHA-256, which the store checks).
// A dropped connection pauses the file and resumes it with the parts the store does not hold yet;
// Cancel discards the file's parts, so nothing half-sent is ever submitted. Part of this project
// (Apache-2.0); no external script, font or service is used.
(function () {
  "use strict";
  const root = document.getElementById("uploader");
  if (!root) return;
  const Sha256 = window.EvidenceSha256;
  const base = root.dataset.base;
  const csrf = root.dataset.csrf;
  const SLICE = 4 * 1024 * 1024;
  const entries = [];
  const $ = (id) => document.getElementById(id);
  const form = $("submit-form");
  const tbody = document.querySelector("#files tbody");
  let busy = false;

  // -- what survives a reload: the open submission and its multipart uploads ---------------------
  // Kept in this browser's localStorage (never sent anywhere): the reference, the claims, and per
  // file (by SHA-256) the upload token and the part checksums already computed.

  const SAVED = `evidence-upload:${base}`;

  function saved() {
    try {
      return JSON.parse(localStorage.getItem(SAVED) || "null");
    } catch (error) {
      return null;
    }
  }

  function save(change) {
    const current = saved() || { files: {} };
    change(current);
    if (Object.keys(current.files).length) localStorage.setItem(SAVED, JSON.stringify(current));
    else localStorage.removeItem(SAVED);
  }

  function remember(entry, reference, claims) {
    save((s) => {
      s.reference = reference;
      s.claims = claims;
      s.files[entry.sha256] = { name: entry.file.name, size: entry.file.size, plan: entry.plan, checksums: entry.checksums };
    });
  }

  function forget(entry) {
    save((s) => delete s.files[entry.sha256]);
  }

  function resumable(entry) {
    const open = saved();
    const file = open && open.files[entry.sha256];
    return file && file.name === entry.file.name && file.size === entry.file.size ? file : null;
  }

  // -- server calls ------------------------------------------------------------------------------

  async function api(path, body) {
    let response;
    try {
      response = await fetch(`${base}/submit/api/${path}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": csrf },
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw Object.assign(new Error("connection to the server lost"), { network: true });
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const message = (data && (data.error || data.detail)) || `the server answered ${response.status}`;
      throw Object.assign(new Error(message), { status: response.status });
    }
    return data;
  }

  function send(entry, signed, body, sentBefore) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      entry.xhr = xhr;
      xhr.open(signed.method, signed.url);
      for (const [name, value] of Object.entries(signed.headers)) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => progress(entry, sentBefore + event.loaded, "sending");
      xhr.onload = () => {
        entry.xhr = null;
        if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr);
        reject(Object.assign(new Error(storeError(xhr)), { status: xhr.status }));
      };
      xhr.onerror = () => {
        entry.xhr = null;
        reject(Object.assign(new Error("connection to the store lost"), { network: true }));
      };
      xhr.onabort = () => reject(Object.assign(new Error("cancelled"), { cancelled: true }));
      xhr.send(body);
    });
  }

  function storeError(xhr) {
    const code = /<Code>([^<]*)<\/Code>/.exec(xhr.responseText || "");
    const message = /<Message>([^<]*)<\/Message>/.exec(xhr.responseText || "");
    const what = code ? `${code[1]}${message ? ": " + message[1] : ""}` : `HTTP ${xhr.status}`;
    return `the store refused the transfer (${what})`;
  }

  // -- hashing -------------------------------------------------------------------------------

  async function digestOf(blob, onSlice) {
    const hasher = new Sha256();
    for (let offset = 0; offset < blob.size; offset += SLICE) {
      hasher.update(new Uint8Array(await blob.slice(offset, offset + SLICE).arrayBuffer()));
      if (onSlice) onSlice(Math.min(offset + SLICE, blob.size));
    }
    return hasher;
  }

  async function hashFile(entry) {
    state(entry, "hashing", "computing SHA-256");
    const hasher = await digestOf(entry.file, (done) => progress(entry, done, "hashing"));
    entry.sha256 = hasher.hex();
    entry.cells.sha.textContent = entry.sha256;
    progress(entry, 0, "ready");
    state(entry, "ready", "hashed; ready to send");
  }

  // -- sending -------------------------------------------------------------------------------

  async function upload(entry, claims, reference) {
    state(entry, "sending", "sending");
    const file = { name: entry.file.name, size: entry.file.size, sha256: entry.sha256 };
    const earlier = resumable(entry);
    if (earlier) {
      entry.plan = earlier.plan;
      entry.checksums = earlier.checksums;
      entry.resumed = true;
    } else {
      entry.plan = await api("file", { ...claims, reference, file });
    }
    entry.token = entry.plan.token;
    if (!entry.plan.already && !entry.plan.put) remember(entry, reference, claims);
    if (!entry.plan.already) {
      await withRetries(entry, () => (entry.plan.put ? sendWhole(entry) : sendParts(entry)));
    }
    const received = await withRetries(entry, () =>
      api("complete", { token: entry.token, checksums: entry.checksums }),
    );
    progress(entry, entry.file.size, "done");
    forget(entry);
    entry.received = received;
    const when = received.received_at.replace("T", " ").replace("+00:00", " UTC");
    state(entry, "done", entry.plan.already ? `already received ${when}` : `received ${when}`);
  }

  async function withRetries(entry, work) {
    let delay = 1000;
    for (;;) {
      if (entry.cancelled) throw Object.assign(new Error("cancelled"), { cancelled: true });
      try {
        return await work();
      } catch (error) {
        if (error.cancelled || entry.cancelled || !error.network) throw error;
        entry.interruptions += 1;
        state(entry, "interrupted", `${error.message}; resuming in ${delay / 1000} s`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 8000);
        // Cancelled while waiting: the cancel has the last word, never "resuming".
        if (entry.cancelled) throw Object.assign(new Error("cancelled"), { cancelled: true });
        state(entry, "sending", "resuming");
      }
    }
  }

  async function sendWhole(entry) {
    try {
      await send(entry, entry.plan.put, entry.file, 0);
    } catch (error) {
      // 412: an earlier attempt arrived although its answer was lost; completing checks it.
      if (error.status !== 412) throw error;
    }
  }

  async function sendParts(entry) {
    const { parts, part_size: size } = entry.plan;
    const done = new Set((await api("parts", { token: entry.token })).done);
    let sent = 0;
    for (let number = 1; number <= parts; number += 1) {
      if (entry.cancelled) throw Object.assign(new Error("cancelled"), { cancelled: true });
      const blob = entry.file.slice((number - 1) * size, number * size);
      const bytes = done.has(number) && entry.checksums[number - 1] ? null : new Uint8Array(await blob.arrayBuffer());
      if (!entry.checksums[number - 1]) entry.checksums[number - 1] = new Sha256().update(bytes).base64();
      if (!done.has(number)) {
        const signed = await api("part", { token: entry.token, number, checksum: entry.checksums[number - 1] });
        await send(entry, signed, bytes, sent);
        entry.sentParts.push(number);
        save((s) => {
          if (s.files[entry.sha256]) s.files[entry.sha256].checksums = entry.checksums;
        });
      }
      sent += blob.size;
      progress(entry, sent, "sending");
    }
  }

  async function discardSaved(clearBanner = true) {
    const open = saved();
    localStorage.removeItem(SAVED);
    if (clearBanner) $("resume-banner").hidden = true;
    for (const file of Object.values((open && open.files) || {})) {
      try {
        await api("abort", { token: file.plan.token });
      } catch (error) {
        // an upload already gone (completed or aborted) has nothing left to discard
      }
    }
  }

  function offerResume() {
    const open = saved();
    if (!open) return;
    const names = Object.values(open.files).map((f) => f.name);
    $("resume-reference").textContent = open.reference;
    $("resume-files").textContent = names.join(", ");
    const fields = { case: "case", submitter: "submitter", location: "location", source_url: "source-url", note: "note" };
    for (const [name, id] of Object.entries(fields)) $(id).value = open.claims[name] || "";
    if (open.claims.time) {
      $("claimed-time").value = open.claims.time.slice(0, -6);
      $("claimed-offset").value = open.claims.time.slice(-6);
    }
    $("resume-banner").hidden = false;
  }

  async function cancel(entry) {
    entry.cancelled = true;
    entry.cells.cancel.disabled = true;
    if (entry.xhr) entry.xhr.abort();
    if (entry.token) {
      try {
        await api("abort", { token: entry.token });
      } catch (error) {
        state(entry, "failed", `cancel failed: ${error.message}`);
        return;
      }
    }
    if (entry.sha256) forget(entry);
    state(entry, "cancelled", "cancelled: nothing of this file was submitted");
  }

  // -- the form ------------------------------------------------------------------------------

  function claimsOf() {
    const time = $("claimed-time").value;
    return {
      case: $("case").value.trim(),
      submitter: $("submitter").value,
      location: $("location").value,
      time: time ? `${time}${$("claimed-offset").value}` : "",
      source_url: $("source-url").value,
      note: $("note").value,
    };
  }

  async function submit(event) {
    event.preventDefault();
    if (busy) return;
    const error = $("form-error");
    error.textContent = "";
    const pending = entries.filter((e) => !e.cancelled && !e.received);
    if (!pending.length) {
      error.textContent = "choose at least one file";
      return;
    }
    busy = true;
    $("send").disabled = true;
    try {
      const claims = claimsOf();
      await Promise.all(pending.map((e) => e.hashing));
      const open = saved();
      const resuming = open && JSON.stringify(open.claims) === JSON.stringify(claims) && pending.some(resumable);
      const started = resuming ? { reference: open.reference } : await api("start", claims);
      if (!resuming && open) discardSaved(false);
      for (const entry of pending) {
        if (entry.cancelled) continue;
        try {
          await upload(entry, claims, started.reference);
        } catch (failure) {
          if (failure.cancelled || entry.cancelled) continue;
          state(entry, "failed", failure.message);
        }
      }
      await issueReceipt(claims);
    } catch (failure) {
      error.textContent = failure.message;
    } finally {
      busy = false;
      $("send").disabled = false;
    }
  }

  async function issueReceipt(claims) {
    const done = entries.filter((e) => e.received && !e.receipted);
    if (!done.length) return;
    const receipt = await api("receipt", { tokens: done.map((e) => e.token), submitter: claims.submitter });
    done.forEach((e) => (e.receipted = true));
    $("receipt-reference").textContent = receipt.receipt;
    $("receipt-meta").textContent =
      `case ${receipt.case}` + (receipt.submitter ? ` · submitted by ${receipt.submitter}` : "") +
      ` · issued ${receipt.issued_at}`;
    const rows = document.querySelector("#receipt-files tbody");
    rows.replaceChildren();
    for (const file of receipt.files) {
      const row = rows.insertRow();
      [file.name, String(file.size), file.sha256, file.received_at].forEach((text, i) => {
        const cell = row.insertCell();
        cell.textContent = text;
        if (i === 1) cell.className = "num";
        if (i >= 2) cell.className = "mono";
      });
    }
    $("receipt-json").href = `${base}/submit/receipt/${receipt.receipt}.json`;
    $("receipt-page").href = `${base}/submit/receipt/${receipt.receipt}`;
    $("receipt").hidden = false;
    $("receipt").scrollIntoView();
  }

  // -- the file table ------------------------------------------------------------------------

  function add(files) {
    const none = tbody.querySelector("tr.none");
    if (none) none.remove();
    for (const file of files) {
      const row = tbody.insertRow();
      row.dataset.name = file.name;
      const cells = {};
      for (const name of ["name", "size", "sha", "bar", "status", "action"]) cells[name] = row.insertCell();
      cells.name.textContent = file.name;
      cells.size.textContent = String(file.size);
      cells.size.className = "num";
      cells.sha.className = "mono hash sha";
      cells.bar.appendChild(document.createElement("progress"));
      cells.status.className = "status";
      cells.cancel = document.createElement("button");
      cells.cancel.type = "button";
      cells.cancel.className = "secondary cancel";
      cells.cancel.textContent = "Cancel";
      cells.action.appendChild(cells.cancel);
      const entry = { file, row, cells, checksums: [], sentParts: [], interruptions: 0, cancelled: false };
      cells.cancel.addEventListener("click", () => cancel(entry));
      entries.push(entry);
      entry.hashing = hashFile(entry).catch((error) => state(entry, "failed", `cannot read the file: ${error.message}`));
    }
  }

  function state(entry, name, text) {
    // A cancelled file stays cancelled: a retry timer or a late answer cannot revive its row.
    if (entry.row.dataset.state === "cancelled") return;
    entry.row.dataset.state = name;
    entry.cells.status.textContent = text;
    entry.cells.cancel.hidden = ["done", "cancelled", "failed"].includes(name);
  }

  function progress(entry, done, phase) {
    const bar = entry.cells.bar.firstChild;
    bar.max = entry.file.size || 1;
    bar.value = done;
    bar.title = `${phase}: ${done} of ${entry.file.size} bytes`;
    entry.row.dataset.sent = String(done);
  }

  // -- map and defaults ----------------------------------------------------------------------

  function pick(event) {
    const svg = $("pick-map");
    const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(svg.getScreenCTM().inverse());
    const lat = Math.max(-90, Math.min(90, 90 - point.y));
    const lon = Math.max(-180, Math.min(180, point.x - 180));
    $("location").value = `${lat.toFixed(5)},${lon.toFixed(5)}`;
    $("pick-dot").setAttribute("cx", String(point.x));
    $("pick-dot").setAttribute("cy", String(point.y));
  }

  function localOffset() {
    const minutes = -new Date().getTimezoneOffset();
    const sign = minutes < 0 ? "-" : "+";
    const m = Math.abs(minutes);
    const text = `${sign}${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
    const select = $("claimed-offset");
    if ([...select.options].some((o) => o.value === text)) select.value = text;
  }

  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    add(event.dataTransfer.files);
  });
  $("file-input").addEventListener("change", (event) => {
    add(event.target.files);
    event.target.value = "";
  });
  $("pick-map").addEventListener("click", pick);
  $("print-receipt").addEventListener("click", () => window.print());
  form.addEventListener("submit", submit);
  localOffset();
  offerResume();
  $("discard-saved").addEventListener("click", () => discardSaved());
  window.evidenceUploads = entries; // read by the browser tests (interruptions, parts sent)
})();
