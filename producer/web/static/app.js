// sip-dialer pages: live refresh of server-rendered fragments, the attempt ladder, the upload with a
// progress bar, and the cancel confirmation. Every URL comes from the page (data-* attributes, form
// actions), which the server built under the proxy's prefix: this file never writes a path itself.
"use strict";

const REFRESH_MS = 2000;

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function signedOut(response) {
  // An expired session turns a fragment fetch into a redirect to the sign-in page: go there.
  if (response.redirected && new URL(response.url).pathname.endsWith("/ui/login")) {
    window.location.assign(response.url);
    return true;
  }
  return false;
}

async function refresh(element) {
  if (element.hasAttribute("data-live-pause-open") && element.querySelector(".ladder-row")) {
    return; // someone is reading a ladder: do not pull the table from under them
  }
  try {
    const response = await fetch(element.dataset.live, { credentials: "same-origin" });
    if (signedOut(response) || !response.ok) return;
    const html = await response.text();
    if (html !== element.dataset.lastHtml) {
      element.innerHTML = html;
      element.dataset.lastHtml = html;
    }
  } catch (error) {
    // the server is restarting or the network blinked: the next tick tries again
  }
}

function startLive() {
  const elements = Array.from(document.querySelectorAll("[data-live]"));
  if (!elements.length) return;
  window.setInterval(() => {
    if (document.hidden) return;
    elements.forEach(refresh);
  }, REFRESH_MS);
}

async function toggleLadder(button) {
  const row = button.closest("tr");
  const next = row.nextElementSibling;
  if (next && next.classList.contains("ladder-row")) {
    next.remove();
    return;
  }
  const response = await fetch(button.dataset.ladder, { credentials: "same-origin" });
  if (signedOut(response) || !response.ok) return;
  const ladderRow = document.createElement("tr");
  ladderRow.className = "ladder-row";
  const cell = document.createElement("td");
  cell.colSpan = row.children.length;
  cell.innerHTML = await response.text(); // a fragment the server rendered and escaped
  ladderRow.appendChild(cell);
  row.after(ladderRow);
}

function cell(row, text, tag) {
  const element = document.createElement(tag || "td");
  element.textContent = text;
  row.appendChild(element);
}

function showUploadResult(form, target, body) {
  const l = form.dataset;
  target.replaceChildren();
  const summary = document.createElement("dl");
  summary.className = "summary";
  summary.id = "upload-summary";
  [["accepted", l.lAccepted], ["duplicates", l.lDuplicates], ["dnc", l.lDnc], ["rejected", l.lRejected]]
    .forEach(([key, label]) => {
      const box = document.createElement("div");
      box.dataset.key = key;
      cell(box, label, "dt");
      cell(box, String(body[key]), "dd");
      summary.appendChild(box);
    });
  target.appendChild(summary);
  if (!body.rejects.length) return;
  const heading = document.createElement("h3");
  heading.textContent = l.lRows + " ";
  const link = document.createElement("a");
  link.href = body.rejects_csv;
  link.id = "rejects-csv";
  link.textContent = l.lDownload;
  link.setAttribute("download", "");
  heading.appendChild(link);
  target.appendChild(heading);
  const table = document.createElement("table");
  table.className = "grid compact";
  table.id = "rejects";
  const head = document.createElement("tr");
  [l.lRow, l.lField, l.lValue, l.lReason].forEach((label) => cell(head, label, "th"));
  table.createTHead().appendChild(head);
  const tbody = table.createTBody();
  body.rejects.forEach((reject) => {
    const row = document.createElement("tr");
    reject.forEach((value) => cell(row, String(value)));
    tbody.appendChild(row);
  });
  target.appendChild(table);
}

function upload(form) {
  const bar = document.getElementById("upload-progress");
  const percent = document.getElementById("upload-percent");
  const target = document.getElementById("upload-result");
  const request = new XMLHttpRequest();
  request.open("POST", form.action);
  request.setRequestHeader("X-CSRF-Token", csrfToken());
  bar.hidden = false;
  bar.value = 0;
  percent.textContent = form.dataset.lUploading;
  request.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    bar.value = Math.round((100 * event.loaded) / event.total);
    percent.textContent = bar.value + "%";
  });
  request.addEventListener("load", () => {
    let body = null;
    try { body = JSON.parse(request.responseText); } catch (error) { body = null; }
    if (request.status === 201 && body) {
      bar.value = 100;
      percent.textContent = "100%";
      showUploadResult(form, target, body);
      document.querySelectorAll("[data-live]").forEach(refresh);
    } else {
      target.replaceChildren();
      const message = document.createElement("p");
      message.className = "error";
      message.id = "upload-error";
      message.textContent = (body && (body.error || body.detail)) || request.statusText;
      target.appendChild(message);
    }
  });
  request.send(new FormData(form));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-ladder]");
  if (button) {
    event.preventDefault();
    toggleLadder(button);
  }
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.hasAttribute("data-confirm")) {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    form.querySelector('input[name="confirm"]').value = "yes";
  }
  if (form.hasAttribute("data-upload")) {
    event.preventDefault();
    upload(form);
  }
});

document.addEventListener("DOMContentLoaded", startLive);
