// melodygen studio: the page's few behaviours over the JSON API (see melodygen/studio/app.py).
"use strict";
const form = document.getElementById("controls");
const modelSelect = document.getElementById("model");
const message = document.getElementById("message");
const samplesBox = document.getElementById("samples");
const favouritesBox = document.getElementById("favourites");
const POLL_MS = 400;
// The studio refuses a POST without this launch's token, which only its own page can read.
const TOKEN = document.querySelector('meta[name="melodygen-token"]').content;
let models = [];

function showMessage(text) { message.textContent = text; message.hidden = !text; }

async function api(path, options = {}) {
  let response;
  try { response = await fetch(path, {...options, headers: {"X-Melodygen-Token": TOKEN}}); }
  catch (e) { throw new Error("the studio is not answering (was it stopped?)"); }
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: said below */ }
  if (!response.ok) throw new Error(body && body.error ? body.error : `the studio answered ${response.status}`);
  return body;
}

function fileUrl(name, download) { return `/files/${encodeURIComponent(name)}${download ? "?download=1" : ""}`; }

function element(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else if (key.startsWith("on")) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null) node.append(child);
  return node;
}

function labelOf(name) { const model = models.find(m => m.name === name); return model ? model.label : name; }

function card(sample) {
  const keep = element("button", {type: "button", class: "keep" + (sample.kept ? " kept" : ""),
                                  title: "keep in favourites", onclick: () => toggleKeep(sample, !sample.kept)},
                       sample.kept ? "★ kept" : "☆ keep");
  const regen = element("button", {type: "button", class: "regenerate", title: "a new piece with a new seed",
                                   onclick: () => regenerate(sample)}, "↻ regenerate");
  const links = [["MIDI", "mid"], ["WAV", "wav"], ["PNG", "png"]].filter(([, k]) => sample.files[k])
    .map(([label, k]) => element("a", {href: fileUrl(sample.files[k], true), download: sample.files[k]}, `⬇ ${label}`));
  const audio = sample.files.wav ? element("audio", {controls: "", preload: "metadata", src: fileUrl(sample.files.wav)})
                                 : element("p", {class: "note"}, sample.notes ? "no audio (see the note on the left)" : "silent piece: no audio");
  return element("div", {class: "card", "data-sample": sample.id},
    element("h3", {}, `${labelOf(sample.model)} · seed ${sample.seed}`,
            element("small", {}, `${sample.seconds.toFixed(1)} s · ${sample.notes} notes`)),
    sample.shortfall ? element("p", {class: "note"}, sample.shortfall) : null,
    element("img", {class: "pianoroll", src: fileUrl(sample.files.png), alt: `piano roll of ${sample.id}`}),
    sample.adherence ? element("p", {class: "adherence"}, element("strong", {}, asked(sample.settings)), " ",
                               sample.adherence) : null,
    audio,
    element("div", {class: "actions"}, ...links, element("span", {class: "spacer"}), regen, keep));
}

// What a steered sample was asked for, e.g. "Key D · chords D G A7 D · 10 notes per bar:".
function asked(settings) {
  const parts = [];
  if (settings.key) parts.push(`key ${settings.key}`);
  if (settings.chords) parts.push(`chords ${settings.chords.join(" ")}`);
  if (settings.density) parts.push(`${settings.density.join(", ")} notes per bar`);
  if (settings.form) parts.push(`form ${settings.form}`);
  const text = parts.join(" · ");
  return text.charAt(0).toUpperCase() + text.slice(1) + ":";
}

function showEmpty(box, text) { if (!box.querySelector(".card")) box.replaceChildren(element("p", {class: "empty"}, text)); }

function showFavourites(list) {
  favouritesBox.replaceChildren(...list.map(card));
  showEmpty(favouritesBox, "Keep a sample with ★ to list it here.");
  const kept = new Set(list.map(s => s.id));
  for (const node of samplesBox.querySelectorAll(".card")) {
    const button = node.querySelector(".keep"), on = kept.has(node.dataset.sample);
    button.classList.toggle("kept", on); button.textContent = on ? "★ kept" : "☆ keep";
    button.onclick = () => toggleKeep({id: node.dataset.sample}, !on);
  }
}

async function toggleKeep(sample, kept) {
  try {
    const body = new FormData(); body.append("keep", kept ? "1" : "0");
    showFavourites((await api(`/api/samples/${sample.id}/keep`, {method: "POST", body})).favourites);
  } catch (e) { showMessage(e.message); }
}

function setProgress(job) {
  document.getElementById("progress-box").hidden = job === null;
  if (job === null) return;
  const bar = document.getElementById("progress");
  bar.max = job.total;
  if (job.done) bar.value = job.done; else bar.removeAttribute("value");  // no value: a moving bar
  const seconds = Math.round((Date.now() - started) / 1000);
  const drawing = job.finished || job.done === job.total ? "" : ` · piece ${job.done + 1}: ${job.events} events`;
  document.getElementById("progress-text").textContent = `${job.done} of ${job.total} pieces${drawing} · ${seconds} s`;
}

let started = 0;

async function follow(job, onSample) {
  let shown = 0;
  started = Date.now();
  setProgress(job);
  while (true) {
    for (; shown < job.samples.length; shown++) onSample(job.samples[shown]);
    if (job.finished) break;
    await new Promise(done => setTimeout(done, POLL_MS));
    job = (await api(`/api/jobs/${job.id}`)).job;
    setProgress(job);
  }
  if (job.error) throw new Error(job.error);
}

async function busy(run) {
  const button = document.getElementById("generate");
  button.disabled = true; showMessage("");
  try { await run(); } catch (e) { showMessage(e.message); }
  finally { button.disabled = false; setProgress(null); }
}

async function regenerate(sample) {
  const old = samplesBox.querySelector(`[data-sample="${sample.id}"]`);
  if (old) old.classList.add("busy");
  await busy(async () => {
    const {job} = await api(`/api/samples/${sample.id}/regenerate`, {method: "POST"});
    await follow(job, fresh => {
      const node = card(fresh);
      if (old && old.isConnected) old.replaceWith(node); else samplesBox.prepend(node);
    });
  });
  if (old) old.classList.remove("busy");
}

form.addEventListener("submit", event => {
  event.preventDefault();
  const primer = document.getElementById("primer").files[0];
  const limit = Number(form.dataset.maxUpload);
  if (primer && primer.size > limit) {
    showMessage(`the file ${primer.name} is larger than ${(limit / 1048576).toFixed(1)} MB; choose a smaller MIDI file`);
    return;
  }
  const data = new FormData(form);
  if (!primer) data.delete("primer");
  busy(async () => {
    const {job} = await api("/api/generate", {method: "POST", body: data});
    samplesBox.replaceChildren();
    await follow(job, sample => samplesBox.append(card(sample)));
  }).then(() => showEmpty(samplesBox, "Nothing yet: press Generate."));
});

// A field the model has no use for is hidden and disabled, so the form does not send it.
function showField(node, shown) {
  node.hidden = !shown;
  for (const input of node.querySelectorAll("input, select")) input.disabled = !shown;
}

function describeModel() {
  const model = models.find(m => m.name === modelSelect.value);
  const controls = (model && model.controls) || [];
  showField(document.getElementById("instruments-field"), model && model.instruments);
  showField(document.getElementById("upload-field"), model && model.instruments);  // tracks to accompany
  for (const node of form.querySelectorAll("[data-control]")) showField(node, controls.includes(node.dataset.control));
  document.getElementById("steering").hidden = !controls.length;
  document.getElementById("model-info").textContent =
    !model ? "" : model.error ? model.error : `${model.kind} over the ${model.encoding} encoding` +
    (controls.length ? `; can be steered by ${controls.join(", ")}` : "");
}

async function start() {
  try {
    models = (await api("/api/models")).models;
    modelSelect.replaceChildren(...models.map(m => element("option", {value: m.name, title: m.name}, m.label)));
    modelSelect.onchange = describeModel;
    describeModel();
    showFavourites((await api("/api/favourites")).favourites);
  } catch (e) { showMessage(e.message); }
}
start();
