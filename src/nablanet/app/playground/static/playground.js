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
    this.fill(this.choices.defaults);
    form.elements.dataset.addEventListener("change", () => {
      this.datasetDefaults();
      this.reset();
    });
    form.addEventListener("change", (event) => {
      if (event.target.name !== "dataset") this.reset();
    });
    form.addEventListener("submit", (event) => event.preventDefault());
    $("#run").addEventListener("click", () => this.toggle());
    $("#step").addEventListener("click", () => this.control("step"));
    $("#reset").addEventListener("click", () => this.reset());
    window.addEventListener("pagehide", () => {
      if (this.session) fetch(`/api/sessions/${this.session}`, { method: "DELETE", keepalive: true });
    });
  },

  // the form showing ``settings`` (the defaults, or those of the session in use)
  fill(settings) {
    const form = $("#settings").elements;
    for (const name of ["dataset", "activation", "optimizer", "learning_rate", "batch_size", "epochs", "speed"]) {
      form[name].value = settings[name];
    }
    form.hidden.value = settings.hidden.join(",");
    this.datasetDefaults();
    if (settings.classes !== null) form.classes.value = settings.classes;
    if (settings.noise !== null) form.noise.value = settings.noise;
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
      hidden: text ? text.split(",").map(Number) : [],
      activation: form.activation.value,
      optimizer: form.optimizer.value,
      learning_rate: Number(form.learning_rate.value),
      batch_size: Number(form.batch_size.value),
      epochs: Number(form.epochs.value),
      speed: form.speed.value,
    };
  },

  generation: 0,

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
      $("#settings-message").textContent = "";
      $("#toy-summary").textContent = description.summary;
      $("#train-state").textContent = "";
      this.showTask();
      this.drawPoints();
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
    $("#settings-message").textContent = ""; // what was refused before: answered by this action
    try {
      await api("POST", `/api/sessions/${this.session}/${action}`);
    } catch (error) {
      $("#train-state").textContent = error.message;
    }
  },

  toggle() {
    this.control(this.state === "running" ? "pause" : "resume");
  },

  // the words of the page for the session's task: a regression has a mean squared error and no accuracy
  showTask() {
    const { task, scale } = this.description;
    const regression = task === "regression";
    $("#plane-title").textContent = regression ? "Regression: the predicted value ŷ" : "Decision boundary";
    $("#boundary").alt = regression ? "the predicted value over the plane" : "decision boundary";
    $("#loss-label").textContent = regression ? "training loss (mean squared error)" : "training loss (cross-entropy)";
    $("#loss-title").textContent = regression ? "Training loss (mean squared error)" : "Training loss (cross-entropy)";
    $("#classification-stats").hidden = regression;
    $("#regression-stats").hidden = !regression;
    $("#plane-scale").replaceChildren(...(regression ? [scaleBar(scale, "ŷ (background) and target y (points): one scale")] : []));
    $("#plane-note").textContent = regression
      ? "A regression: each point's target is a number. Background: the value the network predicts there; " +
        "points: their targets, on the same scale (a value beyond its ends takes the colour of the end)."
      : "Background: the class the network predicts there, paler where it is less sure.";
  },

  drawPoints() {
    const canvas = $("#points");
    const context = canvas.getContext("2d");
    const { bounds, points, point_colours, task } = this.description;
    context.clearRect(0, 0, canvas.width, canvas.height);
    points.forEach(([x, y], i) => {
      const px = ((x - bounds[0]) / (bounds[1] - bounds[0])) * canvas.width;
      const py = ((bounds[3] - y) / (bounds[3] - bounds[2])) * canvas.height;
      context.beginPath();
      context.arc(px, py, 3.2, 0, 2 * Math.PI);
      context.fillStyle = point_colours[i];
      context.fill();
      context.strokeStyle = task === "regression" ? "#1d2330" : "#fff"; // a white point on a white background: outlined
      context.lineWidth = 1;
      context.stroke();
    });
  },

  update(snapshot) {
    this.state = snapshot.state;
    $("#boundary").src = snapshot.boundary;
    $("#boundary").hidden = false;
    $("#epoch").textContent = snapshot.epoch;
    const figure = (value) => (value === null ? "–" : value.toFixed(4)); // null: no epoch yet, or diverged
    $("#loss").textContent = figure(snapshot.loss);
    if (this.description.task === "regression") {
      $("#test-loss").textContent = figure(snapshot.test_loss);
    } else {
      $("#accuracy").textContent = snapshot.accuracy === null ? "–" : `${(100 * snapshot.accuracy).toFixed(1)}\u00a0%`;
      $("#test-accuracy").textContent = `${(100 * snapshot.test_accuracy).toFixed(1)}\u00a0%`;
    }
    $("#run").textContent = snapshot.state === "running" ? "Pause" : "Train";
    $("#run").disabled = $("#step").disabled = !["running", "paused"].includes(snapshot.state);
    $("#train-state").textContent = snapshot.message;
    plot($("#loss-curve"), [snapshot.loss_curve], ["#3b5bdb"], snapshot.epochs);
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
