// The nablanet playground: plain JavaScript, no build step, nothing fetched from another host.
// The server does the math (the library's own layers); this file draws what it answers.
"use strict";

const $ = (selector) => document.querySelector(selector);

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value; // the CSSOM: allowed by the page's CSP, unlike style=""
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(method, path, body, type = "application/json") {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = type;
    options.body = type === "application/json" ? JSON.stringify(body) : body;
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text.slice(0, 200) };
  }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// Diverging colour for a value in [-1, 1]: blue (negative), white (0), red (positive)
function divergingColour(value) {
  const t = Math.max(-1, Math.min(1, value));
  const [r, g, b] = t >= 0 ? [178, 24, 43] : [33, 102, 172];
  const mix = (c) => Math.round(255 + (c - 255) * Math.abs(t));
  return `rgb(${mix(r)}, ${mix(g)}, ${mix(b)})`;
}

// A number for a scale's label: 3 significant digits, no trailing zeros ("0.25", "-1.3e-4")
function short(value) {
  return Math.abs(value) >= 1e-3 || value === 0 ? String(Number(value.toPrecision(3))) : value.toExponential(1);
}

// What a picture's colours mean: its colour bar (from the server) between the values of its two ends
function scaleBar(scale, what) {
  return element("div", { class: "scale" }, [
    element("span", { text: short(scale.low) }),
    element("img", { src: scale.bar, alt: `colour scale of ${what}` }),
    element("span", { text: short(scale.high) }),
    element("span", { class: "note", text: what }),
  ]);
}

const sleep = (milliseconds) => new Promise((resolve) => setTimeout(resolve, milliseconds));

// ---------------------------------------------------------------------------------------- tabs

function showTab(name) {
  for (const tab of ["draw", "train"]) {
    $(`#tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`#${tab}`).hidden = tab !== name;
  }
  if (name === "train" && !Train.session) Train.reset();
}

// ---------------------------------------------------------------------------------------- Draw

const Draw = {
  models: [],
  model: null,
  inFlight: false,
  dirty: false,
  timer: null,
  hasInk: false,

  async init() {
    const pad = $("#pad");
    const context = pad.getContext("2d");
    this.clear();
    let drawing = false;
    const point = (event) => {
      const box = pad.getBoundingClientRect();
      return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
    };
    pad.addEventListener("pointerdown", (event) => {
      drawing = true;
      pad.setPointerCapture(event.pointerId);
      context.beginPath();
      context.moveTo(...point(event));
      context.lineTo(...point(event));
      context.stroke();
      this.hasInk = true;
      this.schedule();
    });
    pad.addEventListener("pointermove", (event) => {
      if (!drawing) return;
      context.lineTo(...point(event));
      context.stroke();
      this.schedule();
    });
    const stop = () => {
      if (drawing) this.schedule(0);
      drawing = false;
    };
    pad.addEventListener("pointerup", stop);
    pad.addEventListener("pointercancel", stop);
    $("#clear").addEventListener("click", () => this.clear());
    $("#model").addEventListener("change", () => this.choose(Number($("#model").value)).catch((error) => this.failed(error)));
    $("#train-recipe").addEventListener("click", () => this.trainRecipe());
    await this.loadModels();
  },

  clear() {
    const pad = $("#pad");
    const context = pad.getContext("2d");
    context.fillStyle = "#000";
    context.fillRect(0, 0, pad.width, pad.height);
    context.strokeStyle = "#fff";
    context.lineWidth = 20;
    context.lineCap = "round";
    context.lineJoin = "round";
    this.hasInk = false;
    $("#input-image").hidden = true;
    $("#input-empty").hidden = false;
    $("#prediction").textContent = "–";
    $("#confidence").textContent = "";
    $("#draw-message").textContent = "";
  },

  // the model list, labelled by run folder, architecture and test accuracy; the best one chosen unless told
  async loadModels(selected) {
    const data = await api("GET", "/api/models");
    this.models = data.models;
    $("#runs-folder").textContent = data.runs + "/";
    const select = $("#model");
    select.replaceChildren(...this.models.map((model) => element("option", { value: model.id, text: model.label })));
    $("#no-model").hidden = this.models.length > 0;
    select.hidden = this.models.length === 0;
    if (this.models.length) {
      const id = selected ?? data.best;
      select.value = String(id);
      await this.choose(id);
    }
  },

  async trainRecipe() {
    const button = $("#train-recipe");
    button.disabled = true;
    button.textContent = "Training…";
    $("#recipe-bar").hidden = false;
    let training = true;
    const watch = async () => {
      while (training) {
        await this.showRecipeProgress().catch(() => {});
        await sleep(500);
      }
    };
    watch();
    try {
      const model = await api("POST", "/api/recipe", {});
      training = false;
      await this.loadModels(model.id);
    } catch (error) {
      $("#draw-message").textContent = error.message;
    } finally {
      training = false;
      button.disabled = false;
      button.textContent = "Train the notebook's softmax classifier";
    }
  },

  async showRecipeProgress() {
    const { training, progress } = await api("GET", "/api/recipe");
    if (!training || !progress) return;
    const done = progress.losses.length;
    const last = progress.losses[done - 1]; // null: diverged
    const loss = done ? `; loss after epoch ${done}: ${last === null ? "diverged" : last.toFixed(4)}` : "";
    const where =
      done === progress.epochs
        ? `all ${progress.epochs} epochs done: testing and saving`
        : `epoch ${progress.epoch + 1} of ${progress.epochs}, batch ${progress.batch} of ${progress.batches}`;
    $("#recipe-progress").textContent = `${where}${loss} (${progress.seconds.toFixed(0)} s so far)`;
    $("#recipe-bar").value = progress.batches ? (progress.epoch + progress.batch / progress.batches) / progress.epochs : 0;
  },

  failed(error) {
    $("#model-info").textContent = "";
    $("#draw-message").textContent = error.message;
  },

  async choose(id) {
    $("#model-info").textContent = "loading…";
    this.model = null; // no prediction with the previous model while this one loads
    const details = await api("GET", `/api/models/${id}`);
    this.model = details;
    const accuracy = details.test_accuracy === null ? "test accuracy not measured" : `test accuracy ${(100 * details.test_accuracy).toFixed(2)} %`;
    $("#model-info").textContent = `${details.kind} ${details.architecture} trained on ${details.dataset}, ${accuracy}`;
    const option = $(`#model option[value="${id}"]`);
    if (option) option.textContent = details.label; // with the accuracy measured just now, if it was not recorded
    $("#model-summary").textContent = details.summary;
    const templates = details.templates || [];
    $("#templates-block").hidden = templates.length === 0;
    $("#templates").replaceChildren(
      ...templates.map((t) => element("div", { class: "figure" }, [element("img", { src: t.image, alt: `template ${t.class}` }), t.class])),
    );
    $("#templates-scale").replaceChildren(...(templates.length ? [scaleBar(
        details.templates_scale,
        templates.length < details.templates_of
          ? `weight Wₖ[p], one scale for the templates of the first ${templates.length} of ${details.templates_of} classes`
          : `weight Wₖ[p], one scale for all ${templates.length} templates`,
      )] : []));
    $("#inside-title").textContent = templates.length ? "Why it thinks so: Wₖ ⊙ x, each pixel's share of the score zₖ" : "Inside the network: each activation and pooling layer's output";
    if (this.hasInk) this.schedule(0);
  },

  // debounced: one request at a time, the newest drawing next; the tab is aria-busy until the newest is shown
  schedule(delay = 120) {
    clearTimeout(this.timer);
    $("#draw").setAttribute("aria-busy", "true");
    this.timer = setTimeout(() => this.predict(), delay);
  },

  async predict() {
    this.timer = null;
    if (!this.model || !this.hasInk) {
      $("#draw").setAttribute("aria-busy", "false");
      return;
    }
    if (this.inFlight) {
      this.dirty = true;
      return;
    }
    this.inFlight = true;
    this.dirty = false;
    try {
      const blob = await new Promise((resolve) => $("#pad").toBlob(resolve, "image/png"));
      const view = await api("POST", `/api/models/${this.model.id}/predict`, blob, "image/png");
      this.show(view);
      $("#draw-message").textContent = "";
    } catch (error) {
      $("#draw-message").textContent = error.message;
    } finally {
      this.inFlight = false;
      if (this.dirty) this.schedule(0);
      else if (this.timer === null) $("#draw").setAttribute("aria-busy", "false");
    }
  },

  show(view) {
    $("#input-image").src = view.input;
    $("#input-image").hidden = false;
    $("#input-empty").hidden = true;
    $("#prediction").textContent = view.prediction;
    const best = view.outputs[view.best];
    $("#confidence").textContent = view.probabilities ? `(${(100 * best).toFixed(1)} %)` : `(score ${best.toFixed(2)})`;
    $("#timing").textContent = `computed in ${view.server_ms} ms on the server`;
    const top = Math.max(...view.outputs.map(Math.abs)) || 1;
    $("#bars").replaceChildren(
      ...view.classes.flatMap((name, k) => [
        element("span", { text: name }),
        element("div", { class: k === view.best ? "bar best" : "bar", style: `width: ${Math.max(0, (160 * view.outputs[k]) / top)}px` }),
        element("span", { text: view.probabilities ? view.outputs[k].toFixed(3) : view.outputs[k].toFixed(2) }),
      ]),
    );
    this.showJacobian(view);
    const contributions = view.contributions || [];
    $("#contributions").replaceChildren(
      ...contributions.map((c) =>
        element("div", { class: "figure" }, [
          element("img", { src: c.image, alt: `contribution map of class ${c.class}` }),
          `class ${c.class}: a = ${c.probability.toFixed(3)}`,
          element("br"),
          `z = Σ W⊙x + b = ${c.score.toFixed(2)} (b = ${c.bias.toFixed(2)})`,
        ]),
      ),
    );
    $("#contributions-scale").replaceChildren(
      ...(contributions.length ? [scaleBar(view.contributions_scale, `Wₖ[p]·x[p], one scale for the ${contributions.length} maps`)] : []),
    );
    const subset = view.layers.length < view.layers_of;
    $("#layers").replaceChildren(
      ...(subset ? [element("p", { class: "note", text: `the first ${view.layers.length} of ${view.layers_of} activation and pooling layers` })] : []),
      ...view.layers.map((layer) =>
        element("div", { class: `figure ${layer.kind}` }, [
          element("img", { src: layer.image, alt: layer.name }),
          `${layer.name} (${layer.shape.join("×")}): ${layer.active} of ${layer.size} > 0`,
          scaleBar(layer.scale, "this layer's outputs"),
        ]),
      ),
    );
  },

  showJacobian(view) {
    const table = $("#jacobian");
    if (!view.jacobian) {
      table.replaceChildren(element("caption", { text: "the model does not end in Softmax" }));
      return;
    }
    const limit = view.jacobian_limit; // the same for every drawing: a near-zero Jacobian looks near white
    const names = view.jacobian_classes.map((k) => view.classes[k]); // all classes, or the most probable of many
    const header = element("tr", {}, [element("th"), ...names.map((name) => element("th", { text: name }))]);
    const rows = view.jacobian.map((row, j) =>
      element("tr", {}, [
        element("th", { text: names[j] }),
        ...row.map((value, k) =>
          element("td", { style: `background: ${divergingColour(value / limit)}`, title: `∂a${names[j]}/∂z${names[k]} = ${value.toExponential(2)}` }),
        ),
      ]),
    );
    const caption = names.length < view.classes.length ? [element("caption", { text: `the ${names.length} most probable of ${view.classes.length} classes` })] : [];
    table.replaceChildren(...caption, header, ...rows);
    const swatches = Array.from({ length: 21 }, (_, i) => element("span", { class: "swatch", style: `background: ${divergingColour(i / 10 - 1)}` }));
    $("#jacobian-scale").replaceChildren(
      element("span", { text: short(-limit) }),
      element("span", { class: "swatches" }, swatches),
      element("span", { text: `+${short(limit)}` }),
    );
    const largest = Math.max(...view.jacobian.flat().map(Math.abs));
    $("#jacobian-largest").textContent = `largest |entry| for this drawing: ${largest.toExponential(1)}, ${(100 * largest / limit).toFixed(largest / limit < 0.01 ? 2 : 0)} % of the scale`;
  },
};

// ---------------------------------------------------------------------------------------- Train

const Train = {
  choices: null,
  session: null,
  events: null,
  description: null,
  state: "paused",

  async init() {
    this.choices = await api("GET", "/api/toy");
    const form = $("#settings");
    const fill = (name, values) =>
      form.elements[name].replaceChildren(...values.map((value) => element("option", { value, text: value })));
    const tasks = ["classification", "regression"].map((task) =>
      element("optgroup", { label: task }, Object.entries(this.choices.datasets)
        .filter(([, info]) => info.task === task)
        .map(([name]) => element("option", { value: name, text: name }))),
    );
    form.elements.dataset.replaceChildren(...tasks);
    fill("activation", this.choices.activations);
    fill("optimizer", this.choices.optimizers);
    fill("speed", this.choices.speeds);
    fill("regularization", this.choices.regularizations);
    $("#features").append(
      ...Object.entries(this.choices.features).map(([name, label]) =>
        element("label", {}, [element("input", { type: "checkbox", name: "feature", value: name }), label]),
      ),
    );
    this.fill(this.choices.defaults);
    const ignored = this.fromAddress(new URLSearchParams(location.search));
    form.elements.dataset.addEventListener("change", () => {
      this.datasetDefaults();
      this.reset();
    });
    form.elements.train_percent.addEventListener("input", () => this.showPercent());
    form.addEventListener("change", (event) => {
      this.showPercent();
      if (event.target.id === "show-test") {
        this.drawPoints();
        if (this.description) history.replaceState(null, "", this.address());
      }
      else if (event.target.name !== "dataset") this.reset();
    });
    form.addEventListener("submit", (event) => event.preventDefault());
    $("#run").addEventListener("click", () => this.toggle());
    $("#step").addEventListener("click", () => this.control("step"));
    $("#reset").addEventListener("click", () => this.reset());
    for (const link of [$("#export-ipynb"), $("#export-py")]) link.addEventListener("click", (event) => this.exportRun(event, link));
    $("#weight-editor").addEventListener("submit", (event) => {
      event.preventDefault();
      this.setWeight();
    });
    if (ignored.length) {
      $("#settings-message").textContent = `the link's ${ignored.join("; ")}: ignored`;
      this.keepMessage = true; // shown until the next change, not cleared by the first session
    }
    window.addEventListener("pagehide", () => {
      if (this.session) fetch(`/api/sessions/${this.session}`, { method: "DELETE", keepalive: true });
    });
    return ignored;
  },

  // the form showing ``settings`` (the defaults, or those of the session in use)
  fill(settings) {
    const form = $("#settings").elements;
    for (const name of Train.plain) form[name].value = settings[name];
    form.hidden.value = settings.hidden.join(",");
    for (const box of $("#features").querySelectorAll("input")) box.checked = settings.features.includes(box.value);
    this.showPercent();
    this.datasetDefaults();
    if (settings.classes !== null) form.classes.value = settings.classes;
    if (settings.noise !== null) form.noise.value = settings.noise;
  },

  // the settings that a form field holds as they are (the others: classes, noise, hidden, features)
  plain: ["dataset", "samples", "train_percent", "activation", "optimizer", "learning_rate", "regularization",
    "regularization_rate", "batch_size", "epochs", "speed", "seed"],

  showPercent() {
    $("#train-percent-shown").textContent = $("#settings").elements.train_percent.value;
  },

  // The setup a link holds (the page's address: ?dataset=xor&features=x1x2&…&features_hide=true): every value
  // is checked here as the form checks a typed one — a choice among the form's, a number within its bounds —
  // and a wrong one is left out (the list says which, and why); the server checks again what the form sends.
  // "name_hide=true" hides that control (an exercise: "find the features that learn XOR", with the rest hidden).
  fromAddress(parameters) {
    const form = $("#settings").elements;
    const ignored = [];
    const known = [...this.plain, "classes", "noise", "hidden", "features", "show_test"];
    let count = 0;
    for (const [key, raw] of parameters) {
      if (++count > 64) break; // a link has at most the page's ~35 parameters
      const value = raw.slice(0, 200);
      const shown = `${key.slice(0, 40)}=${JSON.stringify(value.slice(0, 40))}`;
      if (key.endsWith("_hide")) {
        const name = key.slice(0, -5);
        const control = [...known, "export"].includes(name) && document.querySelector(`#settings [data-control="${name}"]`);
        if (control && value === "true") control.hidden = true;
        else ignored.push(`${shown} (a flag that hides a control: one of ${known.join(", ")}, export; =true)`);
        continue;
      }
      if (!known.includes(key)) {
        ignored.push(`${shown} (no such setting)`);
        continue;
      }
      if (key === "dataset") {
        if (value in this.choices.datasets) {
          form.dataset.value = value;
          this.datasetDefaults();
        } else ignored.push(`${shown} (not a data set of this page)`);
      }
    }
    for (const [key, raw] of parameters) {
      const value = raw.slice(0, 200);
      const shown = `${key.slice(0, 40)}=${JSON.stringify(value.slice(0, 40))}`;
      if (key === "dataset" || key.endsWith("_hide") || !known.includes(key)) continue;
      if (key === "features") {
        const names = value.split(",");
        const valid = names.length > 0 && names.every((name) => name in this.choices.features) && new Set(names).size === names.length;
        if (valid) for (const box of $("#features").querySelectorAll("input")) box.checked = names.includes(box.value);
        else ignored.push(`${shown} (features are distinct names of ${Object.keys(this.choices.features).join(", ")})`);
      } else if (key === "show_test") {
        $("#show-test").checked = value === "true";
      } else {
        const field = form[key];
        const before = field.value;
        field.value = value;
        const options = field.tagName === "SELECT" ? [...field.options].map((option) => option.value) : null;
        const fits = options ? options.includes(value) : field.name === "hidden" ? /^(\d{1,3}(,\d{1,3}){0,5})?$/.test(value) : value !== "" && field.checkValidity();
        if (!fits || field.value !== value) {
          field.value = before;
          ignored.push(`${shown} (${field.closest("label").querySelector("[data-expects]")?.textContent || "not one of the choices"})`);
        }
      }
    }
    this.showPercent();
    return ignored;
  },

  // the address of this setup: every setting, the "show test data" switch and the hiding flags in use
  address() {
    const settings = this.settings();
    const parameters = new URLSearchParams();
    for (const [key, value] of Object.entries(settings)) {
      if (value !== null) parameters.set(key, Array.isArray(value) ? value.join(",") : String(value));
    }
    parameters.set("show_test", String($("#show-test").checked));
    for (const control of document.querySelectorAll("#settings [data-control][hidden]")) {
      if (control.id !== "classes-label") parameters.set(`${control.dataset.control}_hide`, "true");
    }
    return `?${parameters}#train`;
  },

  datasetDefaults() {
    const form = $("#settings");
    const info = this.choices.datasets[form.elements.dataset.value];
    form.elements.classes.value = info.classes;
    form.elements.noise.value = info.noise;
    $("#classes-label").hidden = !info.choose_classes;
  },

  // what is wrong with the form, in the words of its labels, or null: checked here, so that nothing
  // unreadable (an empty field, "abc") is sent as a number
  problem() {
    for (const label of $("#settings").querySelectorAll("label:not([hidden])")) {
      const input = label.querySelector("input");
      const expects = label.querySelector("[data-expects]");
      if (!input || !expects) continue;
      const name = label.querySelector("span").firstChild.textContent.trim();
      const text = input.value.trim();
      const wrong =
        input.name === "hidden" ? text !== "" && !/^\d+(\s*,\s*\d+)*$/.test(text) : text === "" || !input.checkValidity();
      if (wrong) return `${name} must be ${expects.textContent}, received: ${text === "" ? "nothing" : JSON.stringify(text)}`;
    }
    if (!this.settings().features.length) return "the network needs at least one input feature: tick one";
    return null;
  },

  settings() {
    const form = $("#settings").elements;
    const info = this.choices.datasets[form.dataset.value];
    const text = form.hidden.value.trim();
    return {
      dataset: form.dataset.value,
      classes: info.choose_classes ? Number(form.classes.value) : null,
      noise: Number(form.noise.value),
      samples: Number(form.samples.value),
      train_percent: Number(form.train_percent.value),
      features: [...$("#features").querySelectorAll("input:checked")].map((box) => box.value),
      hidden: text ? text.split(",").map(Number) : [],
      activation: form.activation.value,
      optimizer: form.optimizer.value,
      learning_rate: Number(form.learning_rate.value),
      regularization: form.regularization.value,
      regularization_rate: Number(form.regularization_rate.value),
      batch_size: Number(form.batch_size.value),
      epochs: Number(form.epochs.value),
      speed: form.speed.value,
      seed: Number(form.seed.value),
    };
  },

  generation: 0,
  keepMessage: false,

  // a new session from the form; a refused one changes nothing: the session in use goes on, and the form
  // shows its settings again, under the message that says what was refused
  async reset() {
    const generation = ++this.generation; // a newer Reset wins: the session this one creates is closed again
    const problem = this.problem();
    if (problem) return this.refuse(problem);
    try {
      const description = await api("POST", "/api/sessions", this.settings());
      if (generation !== this.generation) {
        api("DELETE", `/api/sessions/${description.id}`).catch(() => {});
        return;
      }
      if (this.events) this.events.close();
      if (this.session) api("DELETE", `/api/sessions/${this.session}`).catch(() => {});
      this.session = description.id;
      this.description = description;
      if (!this.keepMessage) $("#settings-message").textContent = "";
      this.keepMessage = false;
      $("#toy-summary").textContent = description.summary;
      $("#train-state").textContent = "";
      $("#step-change").textContent = "";
      this.previous = null;
      this.network = null;
      this.hovered = null;
      $("#weight-editor").hidden = true;
      this.showTask();
      this.drawPoints();
      this.drawNetwork();
      history.replaceState(null, "", this.address());
      $("#export-ipynb").href = `/api/sessions/${description.id}/export.ipynb`;
      $("#export-py").href = `/api/sessions/${description.id}/export.py`;
      this.events = new EventSource(`/api/sessions/${description.id}/events`);
      this.events.onmessage = (message) => this.update(JSON.parse(message.data));
    } catch (error) {
      if (generation === this.generation) this.refuse(error.message);
    }
  },

  refuse(message) {
    const kept = this.description ? "; the form shows the settings still in use" : "";
    if (this.description) this.fill(this.description.settings);
    $("#settings-message").textContent = `not applied: ${message}${kept}`;
  },

  async control(action) {
    if (!this.session) return;
    this.stepping = action === "step";
    $("#settings-message").textContent = ""; // what was refused before: answered by this action
    $("#export-message").textContent = "";
    try {
      await api("POST", `/api/sessions/${this.session}/${action}`);
    } catch (error) {
      $("#train-state").textContent = error.message;
    }
  },

  // an export link: the file when the run can be exported, else the server's reason beside the links (a plain
  // download link would save the refusal itself as the file). Returns the file's name, null if refused.
  async exportRun(event, link) {
    event.preventDefault();
    $("#export-message").textContent = "";
    try {
      const response = await fetch(link.href);
      if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || `HTTP ${response.status}`);
      const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition"))[1];
      const address = URL.createObjectURL(await response.blob());
      element("a", { href: address, download: name }).click();
      setTimeout(() => URL.revokeObjectURL(address), 60000);
      return name;
    } catch (error) {
      $("#export-message").textContent = `not exported: ${error.message}`;
      return null;
    }
  },

  toggle() {
    this.control(this.state === "running" ? "pause" : "resume");
  },

  // after a Step: what the one epoch changed — the loss, and the weight that moved most
  showStep(before, after) {
    if (!this.stepping || !before || after.epoch !== before.epoch + 1) return;
    this.stepping = false;
    const loss = (value) => (value === null ? "–" : value.toFixed(4));
    let change = "";
    if (before.network && after.network) {
      let best = null;
      after.network.weights.forEach((matrix, layer) =>
        matrix.forEach((row, j) =>
          row.forEach((value, i) => {
            const delta = value - before.network.weights[layer][j][i];
            if (!best || Math.abs(delta) > Math.abs(best.delta)) best = { delta, layer, j, i };
          }),
        ),
      );
      if (best) change = `; the weight that moved most: ${this.weightName(best.layer, best.j, best.i)} by Δw = ${best.delta >= 0 ? "+" : ""}${best.delta.toPrecision(3)}`;
    }
    $("#step-change").textContent = `one step: epoch ${before.epoch} → ${after.epoch}, training loss ${loss(before.loss)} → ${loss(after.loss)}${change}`;
  },

  // ---------------------------------------------------------------- the network diagram

  network: null,
  hovered: null,
  editing: null,

  // a unit's name: x₁… for an input, a¹₃ for unit 3 of hidden layer 1, the output's ŷ or zₖ
  unitName(column, unit) {
    const { sizes, features, task } = this.description;
    const sub = (n) => String(n).replace(/\d/g, (d) => "₀₁₂₃₄₅₆₇₈₉"[d]);
    const sup = (n) => String(n).replace(/\d/g, (d) => "⁰¹²³⁴⁵⁶⁷⁸⁹"[d]);
    if (column === 0) return features[unit].label;
    if (column === sizes.length - 1) return task === "regression" ? "ŷ" : `z${sub(unit + 1)} (class ${unit})`;
    return `a${sup(column)}${sub(unit + 1)}`;
  },

  weightName(layer, row, column) {
    const inputs = this.description.sizes[layer];
    const to = this.unitName(layer + 1, row);
    return column === inputs ? `the bias of ${to}` : `w from ${this.unitName(layer, column)} to ${to}`;
  },

  // what hovering shows: a weight, or a unit's weights and formula with their values, and (paused) the gradients
  info() {
    const target = this.hovered;
    if (!target || !this.network) return "Hover a unit: its weights and its formula.";
    const { weights, gradients } = this.network;
    const paused = this.state !== "running" && gradients;
    const number = (value) => value.toPrecision(3);
    // with a penalty, a weight's stored gradient is ∇(L + λR): fit adds λ∇R before the step (a bias has none)
    const { regularization, regularization_rate: rate } = this.description.settings;
    const dw = regularization === "none" ? "∂L/∂w" : "∂(L + λR)/∂w";
    if (target.kind === "weight") {
      const { layer, row, column } = target;
      const bias = column === this.description.sizes[layer];
      const penalty = regularization === "none" || bias ? "" : `, with ${regularization.toUpperCase()}'s λ = ${rate}`;
      const gradient = paused
        ? `\n${bias ? "∂L/∂b" : dw} = ${number(gradients[layer][row][column])} (the last mini-batch's gradient${penalty})`
        : "";
      return `${this.weightName(layer, row, column)}: w = ${number(weights[layer][row][column])}${gradient}\nclick to edit it`;
    }
    const { column, unit } = target;
    if (column === 0) return `input ${this.unitName(0, unit)}: its value over the plane (on its own scale)`;
    const layer = column - 1;
    const row = weights[layer][unit];
    const inputs = this.description.sizes[layer];
    const terms = row.slice(0, inputs).map((w, i) => `${i ? (w < 0 ? " − " : " + ") : w < 0 ? "−" : ""}${number(Math.abs(w))}·${this.unitName(layer, i)}`);
    const bias = row[inputs];
    const output = column === this.description.sizes.length - 1;
    const z = output && this.description.task === "regression" ? "ŷ" : `z`;
    const activation = output
      ? this.description.task === "regression" ? "ŷ = z: no activation" : "a = softmax(z): the class probabilities"
      : `${this.unitName(column, unit)} = ${this.description.settings.activation}(z)`;
    const lines = [
      `${this.unitName(column, unit)}: ${output ? "output" : `unit ${unit + 1} of hidden layer ${column}`}`,
      `${z} = w·x + b = ${terms.join("")}${bias < 0 ? " − " : " + "}${number(Math.abs(bias))}`,
      activation,
    ];
    if (paused) {
      const g = gradients[layer][unit];
      lines.push(`the last mini-batch's gradients: ${dw} = [${g.slice(0, inputs).map(number).join(", ")}], ∂L/∂b = ${number(g[inputs])}`);
    }
    lines.push("click the unit to edit its bias");
    return lines.join("\n");
  },

  edit(layer, row, column) {
    this.editing = { layer, row, column };
    const value = this.network.weights[layer][row][column];
    $("#weight-name").textContent = `${this.weightName(layer, row, column)} (now ${value})`;
    $("#weight-value").value = value;
    $("#weight-message").textContent = "";
    $("#weight-editor").hidden = false;
    $("#weight-value").focus();
  },

  // the editor's Set; a refusal is said in the editor (the training state's line is rewritten by every snapshot)
  async setWeight() {
    if (!this.session || !this.editing) return;
    const value = Number($("#weight-value").value);
    if (!$("#weight-value").checkValidity() || $("#weight-value").value.trim() === "") {
      $("#weight-message").textContent = "a weight must be a number from -100 to 100";
      return;
    }
    try {
      await api("POST", `/api/sessions/${this.session}/weight`, { ...this.editing, value });
      $("#weight-message").textContent = "";
      $("#weight-editor").hidden = true;
    } catch (error) {
      $("#weight-message").textContent = error.message;
    }
  },

  drawNetwork() {
    const { sizes, drawn, feature_pictures, picture_size, task, colours } = this.description;
    $("#diagram-svg").hidden = !drawn;
    $("#diagram-too-large").hidden = drawn;
    if (!drawn) return;
    const namespace = $("#diagram-svg").namespaceURI; // SVG's, as the HTML parser gave it to the empty <svg>
    const svg = (tag, attributes = {}) => {
      const node = document.createElementNS(namespace, tag);
      for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
      return node;
    };
    const size = 30, gap = 38, step = 150;
    const height = Math.max(...sizes) * gap + 30;
    const width = (sizes.length - 1) * step + 170;
    const position = (column, unit) => [70 + column * step, 20 + (height - 30 - sizes[column] * gap) / 2 + unit * gap];
    const picture = $("#diagram-svg");
    picture.replaceChildren();
    for (const [key, value] of Object.entries({ width, height, viewBox: `0 0 ${width} ${height}`, "aria-label": `a network of layers ${sizes.join(", ")}` })) {
      picture.setAttribute(key, value);
    }
    const network = this.network;
    if (network) {
      network.weights.forEach((matrix, layer) =>
        matrix.forEach((row, j) =>
          row.slice(0, sizes[layer]).forEach((w, i) => {
            const [x1, y1] = position(layer, i);
            const [x2, y2] = position(layer + 1, j);
            const ends = { x1: x1 + size, y1: y1 + size / 2, x2, y2: y2 + size / 2 };
            picture.append(svg("line", { ...ends, stroke: w >= 0 ? "#b2182b" : "#2166ac", "stroke-width": Math.min(8, 0.4 + 2 * Math.abs(w)), "stroke-opacity": 0.75 }));
            const hit = svg("line", { ...ends, stroke: "transparent", "stroke-width": 7, class: "weight", "data-weight": `${layer},${j},${i}` });
            hit.addEventListener("mouseenter", () => this.hover({ kind: "weight", layer, row: j, column: i }));
            hit.addEventListener("click", () => this.edit(layer, j, i));
            picture.append(hit);
          }),
        ),
      );
    }
    sizes.forEach((units, column) => {
      for (let unit = 0; unit < units; unit++) {
        const [x, y] = position(column, unit);
        const output = column === sizes.length - 1;
        // a unit's picture: its square of its layer's strip of pictures, side by side (one PNG a layer)
        const strip = column === 0 ? feature_pictures : !output && network ? network.neurons[column - 1] : null;
        let node;
        if (strip) {
          node = svg("svg", { x, y, width: size, height: size, viewBox: `${unit * picture_size} 0 ${picture_size} ${picture_size}`, preserveAspectRatio: "none" });
          node.append(svg("image", { href: strip, width: units * picture_size, height: picture_size, preserveAspectRatio: "none" }));
        } else if (output && task === "regression" && $("#boundary").src) {
          node = svg("image", { href: $("#boundary").src, x, y, width: size, height: size, preserveAspectRatio: "none" });
        } else {
          node = svg("rect", { x, y, width: size, height: size, fill: output && task !== "regression" ? colours[unit % colours.length] : "#fff" });
        }
        node.setAttribute("class", "unit");
        node.setAttribute("data-unit", `${column},${unit}`);
        node.addEventListener("mouseenter", () => this.hover({ kind: "unit", column, unit }));
        if (column > 0) node.addEventListener("click", () => this.edit(column - 1, unit, sizes[column - 1]));
        picture.append(node, svg("rect", { x, y, width: size, height: size, fill: "none", stroke: "#5d6778", "pointer-events": "none" }));
        if (column === 0 || output) {
          const label = svg("text", { x: column === 0 ? x - 4 : x + size + 4, y: y + size / 2 + 4, "text-anchor": column === 0 ? "end" : "start", "font-size": 11 });
          label.textContent = this.unitName(column, unit).replace(/ \(class \d+\)/, "");
          picture.append(label);
        }
      }
    });
    $("#diagram-info").textContent = this.info();
  },

  hover(target) {
    this.hovered = target;
    $("#diagram-info").textContent = this.info();
  },

  // the words of the page for the session's task: a regression has a mean squared error and no accuracy
  showTask() {
    const { task, scale } = this.description;
    const regression = task === "regression";
    $("#plane-title").textContent = regression ? "Regression: the predicted value ŷ" : "Decision boundary";
    $("#boundary").alt = regression ? "the predicted value over the plane" : "decision boundary";
    $("#loss-label").textContent = regression ? "training loss (mean squared error)" : "training loss (cross-entropy)";
    $("#loss-title").textContent = regression ? "Loss (mean squared error)" : "Loss (cross-entropy)";
    $("#classification-stats").hidden = regression;
    $("#test-loss-label").textContent = regression ? "test loss (mean squared error)" : "test loss (cross-entropy)";
    $("#plane-scale").replaceChildren(...(regression ? [scaleBar(scale, "ŷ (background) and target y (points): one scale")] : []));
    $("#plane-note").textContent = regression
      ? "A regression: each point's target is a number. Background: the value the network predicts there; " +
        "points: their targets, on the same scale (a value beyond its ends takes the colour of the end)."
      : "Background: the class the network predicts there, paler where it is less sure.";
  },

  drawPoints() {
    const canvas = $("#points");
    const context = canvas.getContext("2d");
    const { bounds, points, point_colours, test_points, test_point_colours, task } = this.description;
    context.clearRect(0, 0, canvas.width, canvas.height);
    const dot = ([x, y], colour, test) => {
      const px = ((x - bounds[0]) / (bounds[1] - bounds[0])) * canvas.width;
      const py = ((bounds[3] - y) / (bounds[3] - bounds[2])) * canvas.height;
      context.beginPath();
      context.arc(px, py, 3.2, 0, 2 * Math.PI);
      context.fillStyle = colour;
      context.fill();
      // a white point on a white background: outlined; a test point: a black ring
      context.strokeStyle = test ? "#000" : task === "regression" ? "#1d2330" : "#fff";
      context.lineWidth = test ? 1.6 : 1;
      context.stroke();
    };
    points.forEach((point, i) => dot(point, point_colours[i], false));
    if ($("#show-test").checked) test_points.forEach((point, i) => dot(point, test_point_colours[i], true));
    canvas.setAttribute("aria-label", `${points.length} training points${$("#show-test").checked ? ` and ${test_points.length} test points (black rings)` : ""}`);
  },

  update(snapshot) {
    this.showStep(this.previous, snapshot);
    this.previous = snapshot;
    this.state = snapshot.state;
    $("#boundary").src = snapshot.boundary;
    $("#boundary").hidden = false;
    $("#epoch").textContent = snapshot.epoch;
    const figure = (value) => (value === null ? "–" : value.toFixed(4)); // null: no epoch yet, or diverged
    $("#loss").textContent = figure(snapshot.loss);
    $("#test-loss").textContent = figure(snapshot.test_loss);
    if (this.description.task !== "regression") {
      $("#accuracy").textContent = snapshot.accuracy === null ? "–" : `${(100 * snapshot.accuracy).toFixed(1)}\u00a0%`;
      $("#test-accuracy").textContent = `${(100 * snapshot.test_accuracy).toFixed(1)}\u00a0%`;
    }
    $("#run").textContent = snapshot.state === "running" ? "Pause" : "Train";
    $("#run").disabled = $("#step").disabled = !["running", "paused"].includes(snapshot.state);
    $("#train-state").textContent = snapshot.message;
    plot($("#loss-curve"), [snapshot.loss_curve, snapshot.test_loss_curve], ["#3b5bdb", "#e8590c"], snapshot.epochs);
    this.network = snapshot.network;
    this.drawNetwork();
    const colours = this.description.colours;
    plot($("#norm-curve"), snapshot.norm_curves, colours, snapshot.epochs);
    $("#norm-legend").replaceChildren(
      ...snapshot.norms.map((norm, i) =>
        element("span", { style: `color: ${colours[i % colours.length]}; margin-right: 0.8rem`, text: `‖W${i + 1}‖ = ${norm === null ? "diverged" : norm.toFixed(2)}` }),
      ),
    );
  },
};

// A line chart of curves {epochs, values}, x from 0 to the last epoch seen, y from 0 to the largest value
function plot(canvas, curves, colours, epochs) {
  const context = canvas.getContext("2d");
  const [width, height, left, bottom] = [canvas.width, canvas.height, 44, 18];
  context.clearRect(0, 0, width, height);
  const lastEpoch = Math.max(1, ...curves.map((c) => c.epochs[c.epochs.length - 1] || 0));
  const values = curves.flatMap((c) => c.values.filter(Number.isFinite)); // null: diverged
  context.strokeStyle = "#b6bfcc";
  context.beginPath();
  context.moveTo(left, 4);
  context.lineTo(left, height - bottom);
  context.lineTo(width - 4, height - bottom);
  context.stroke();
  context.fillStyle = "#5d6778";
  context.font = "11px system-ui, sans-serif";
  const name = canvas.dataset.name;
  if (!values.length) {
    context.fillText("no epochs yet", left + 12, (height - bottom) / 2); // no scale to show: no tick labels
    canvas.setAttribute("aria-label", `${name}: no epochs yet`);
    return;
  }
  const top = Math.max(...values) || 1; // all zero: the line lies on the axis, under a top of 1
  context.fillText(short(top), 2, 12);
  canvas.setAttribute("aria-label", `${name} over epochs 1 to ${lastEpoch}, on a scale from 0 to ${short(top)}`);
  context.fillText("0", left - 12, height - bottom);
  context.fillText(`epoch ${lastEpoch}`, width - 70, height - 4);
  curves.forEach((curve, i) => {
    context.strokeStyle = colours[i % colours.length];
    context.lineWidth = 1.6;
    context.beginPath();
    curve.epochs.forEach((epoch, j) => {
      if (!Number.isFinite(curve.values[j])) return; // a diverged value: no point, the line stops there
      const x = left + ((epoch / lastEpoch) * (width - left - 6));
      const y = height - bottom - (curve.values[j] / top) * (height - bottom - 8);
      if (j === 0) context.moveTo(x, y);
      else context.lineTo(x, y);
    });
    context.stroke();
  });
}

window.addEventListener("DOMContentLoaded", async () => {
  $("#tab-draw").addEventListener("click", () => showTab("draw"));
  $("#tab-train").addEventListener("click", () => showTab("train"));
  try {
    await Promise.all([Draw.init(), Train.init()]);
  } catch (error) {
    $("#draw-message").textContent = error.message;
  }
  if (location.hash === "#train") showTab("train");
});
