// Rankery's few scripts: ranking by keyboard and drag-and-drop, and the structured lists of
// few-shot pairs and dialogue turns. Every form also works without them.
"use strict";

function setupRanking(form) {
  const list = form.querySelector("#ranking");
  const hasTies = form.querySelector("#has_ties");
  const items = () => Array.from(list.querySelectorAll("li.completion"));
  let touched = items().some((li) => li.querySelector(".rank-select").value !== "");
  form.classList.add("js-ranking");

  // Submitting before anything was ordered would send no ranks at all: say what to do instead.
  const unranked = document.createElement("p");
  unranked.className = "error";
  unranked.setAttribute("role", "alert");
  unranked.hidden = true;
  unranked.textContent = "Put the answers in order first: drag them, or focus one and press a digit.";
  list.before(unranked);
  form.addEventListener("submit", (event) => {
    if (touched) return;
    event.preventDefault();
    unranked.hidden = false;
  });

  // The list order is the ranking; a ticked tie shares the rank of the answer above.
  function sync() {
    let rank = 0;
    items().forEach((li, index) => {
      const tie = li.querySelector(".tie-toggle");
      if (index === 0) tie.checked = false;
      tie.disabled = index === 0;
      if (!(index > 0 && tie.checked)) rank = index + 1;
      li.querySelector(".rank-select").value = touched ? String(rank) : "";
      li.querySelector(".place").textContent = touched ? String(rank) : "–";
    });
    if (touched) unranked.hidden = true;
    if (items().some((li) => li.querySelector(".tie-toggle").checked)) hasTies.checked = true;
  }

  function moveTo(li, place) {
    const others = items().filter((x) => x !== li);
    const target = others[place - 1];
    if (target) list.insertBefore(li, target); else list.appendChild(li);
    touched = true;
    sync();
    li.focus();
  }

  // Restore the order of a re-rendered form (after an error) from its rank selects.
  if (touched) {
    items()
      .map((li) => [Number(li.querySelector(".rank-select").value) || 99, li])
      .sort((a, b) => a[0] - b[0])
      .forEach(([, li]) => list.appendChild(li));
  }
  sync();

  list.addEventListener("keydown", (event) => {
    const li = event.target.closest("li.completion");
    if (!li || event.target !== li) return;  // keys typed into a field stay in the field
    const all = items();
    const index = all.indexOf(li);
    if (/^[1-9]$/.test(event.key) && Number(event.key) <= all.length) {
      moveTo(li, Number(event.key));
    } else if ((event.key === "ArrowUp" || event.key === "k") && event.altKey) {
      if (index > 0) moveTo(li, index);
    } else if ((event.key === "ArrowDown" || event.key === "j") && event.altKey) {
      if (index < all.length - 1) moveTo(li, index + 2);
    } else if (event.key === "ArrowUp" || event.key === "k") {
      if (index > 0) all[index - 1].focus();
    } else if (event.key === "ArrowDown" || event.key === "j") {
      if (index < all.length - 1) all[index + 1].focus();
    } else if (event.key === "t" && index > 0) {
      const tie = li.querySelector(".tie-toggle");
      tie.checked = !tie.checked;
      touched = true;
      sync();
    } else if (event.key === "Enter") {
      form.requestSubmit();
    } else {
      return;
    }
    event.preventDefault();
  });

  list.addEventListener("change", (event) => {
    if (event.target.classList.contains("tie-toggle")) { touched = true; sync(); }
  });

  let dragged = null;
  list.addEventListener("dragstart", (event) => {
    dragged = event.target.closest("li.completion");
    if (!dragged) return;
    dragged.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", dragged.dataset.id);
  });
  list.addEventListener("dragover", (event) => {
    const over = event.target.closest("li.completion");
    if (!dragged || !over) return;
    event.preventDefault();
    if (over === dragged) return;
    const box = over.getBoundingClientRect();
    const after = event.clientY > box.top + box.height / 2;
    list.insertBefore(dragged, after ? over.nextSibling : over);
  });
  list.addEventListener("drop", (event) => { event.preventDefault(); });
  list.addEventListener("dragend", () => {
    if (!dragged) return;
    dragged.classList.remove("dragging");
    dragged = null;
    touched = true;
    sync();
  });
}

// Show only the parts of a form that belong to the chosen kind; hidden parts are disabled so
// they are not submitted.
function setupKindSwitch(form) {
  function apply() {
    const chosen = form.querySelector('input[name="kind"]:checked');
    const kind = chosen ? chosen.value : "";
    form.dataset.kind = kind;
    form.querySelectorAll('[class*="for-"]').forEach((part) => {
      const on = part.classList.contains(`for-${kind}`);
      part.hidden = !on;
      part.querySelectorAll("input, textarea, select, button").forEach((el) => { el.disabled = !on; });
    });
  }
  form.addEventListener("change", (event) => { if (event.target.name === "kind") apply(); });
  apply();
}

function setupRepeater(form, listSelector, templateSelector, addSelector) {
  const list = form.querySelector(listSelector);
  const template = form.querySelector(templateSelector);
  const add = form.querySelector(addSelector);
  if (!list || !template || !add) return;
  add.addEventListener("click", () => {
    list.appendChild(template.content.cloneNode(true));
    if (window.htmx) htmx.process(list);  // the new turns' Suggest buttons
    const fields = list.querySelectorAll("textarea");
    fields[fields.length - 2].focus();
  });
  return list;
}

// Comparing two answers: 1 and 2 choose A and B, 0 a tie, Enter submits the choice.
function setupComparison(form) {
  const keys = { "1": "a", "2": "b", "0": "tie" };
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target.matches("textarea, select, input:not([type=radio])") || target.closest("details.skip")) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (keys[event.key]) {
      const radio = form.querySelector(`input[name=choice][value=${keys[event.key]}]`);
      radio.checked = true;
      radio.focus();
      event.preventDefault();
    } else if (event.key === "Enter" && target.tagName !== "BUTTON" && target.tagName !== "A") {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const ranking = document.querySelector("#ranking-form");
  if (ranking) setupRanking(ranking);

  const comparison = document.querySelector("#comparison-form");
  if (comparison) setupComparison(comparison);

  const prompt = document.querySelector("#prompt-form");
  if (prompt) {
    setupKindSwitch(prompt);
    const pairs = setupRepeater(prompt, "#pairs", "#pair-template", "#add-pair");
    pairs?.addEventListener("click", (event) => {
      if (event.target.classList.contains("remove-pair")) event.target.closest("li.pair").remove();
    });
  }

  const demonstration = document.querySelector("#demonstration-form");
  if (demonstration) {
    setupKindSwitch(demonstration);
    const turns = setupRepeater(demonstration, "#turns", "#turn-pair-template", "#add-turns");
    demonstration.querySelector("#remove-turns")?.addEventListener("click", () => {
      const all = turns?.querySelectorAll("li.turn") ?? [];
      if (all.length > 1) { all[all.length - 1].remove(); all[all.length - 2].remove(); }
    });
  }
});

// Dialogue suggestions: a Suggest button sends the dialogue with the index of its turn; a
// ready suggestion goes into that turn's text box (editable) and is remembered for the record.
document.addEventListener("htmx:configRequest", (event) => {
  const button = event.detail.elt;
  if (!button.classList?.contains("suggest-button")) return;
  const turns = [...button.closest("ol").querySelectorAll(":scope > li.turn")];
  event.detail.parameters.turn = String(turns.indexOf(button.closest("li.turn")));
});

document.addEventListener("htmx:load", (event) => {
  const ready = event.detail.elt.closest?.("[data-suggestion-text]")
    ?? event.detail.elt.querySelector?.("[data-suggestion-text]");
  if (!ready) return;
  const turn = ready.closest("li.turn");
  const box = turn.querySelector("textarea[name=turn_content]");
  box.value = ready.dataset.suggestionText;
  turn.querySelector("input[name=turn_suggestion]").value = ready.dataset.suggestionJob;
  box.focus();
});
