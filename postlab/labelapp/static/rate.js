// Keyboard shortcuts and the edit box of the rating page; every action also works with the mouse.
(function () {
  "use strict";
  const form = document.getElementById("label-form");
  if (!form) return;
  const edit = document.getElementById("edit");
  const byId = (id) => document.getElementById(id);
  const choice = () => (form.querySelector('input[name="choice"]:checked') || {}).value;
  const originalOf = (side) => byId("text-" + side).textContent;
  let editedFrom = null; // side whose text the edit box started from

  function openEdit() {
    const side = choice();
    if (side !== "a" && side !== "b") { alert("Choose A or B first: you edit the better response."); return; }
    if (edit.disabled || editedFrom !== side) { edit.value = originalOf(side); editedFrom = side; }
    edit.disabled = false; edit.hidden = false; edit.focus();
  }
  function closeEdit() { edit.disabled = true; edit.hidden = true; editedFrom = null; }
  function submit(action) { form.querySelector('button[value="' + action + '"]').click(); }

  byId("edit-toggle").addEventListener("click", openEdit);
  form.querySelectorAll('input[name="choice"]').forEach((radio) => radio.addEventListener("change", () => {
    // An edit belongs to the chosen response: an unchanged box follows the choice, a tie closes it.
    if (edit.disabled) return;
    if (choice() === "tie") closeEdit();
    else if (edit.value === originalOf(editedFrom)) { edit.value = originalOf(choice()); editedFrom = choice(); }
  }));

  const keys = {
    a: () => byId("choice-a").click(), ArrowLeft: () => byId("choice-a").click(),
    b: () => byId("choice-b").click(), ArrowRight: () => byId("choice-b").click(),
    t: () => byId("choice-tie").click(),
    1: () => byId("strength-1").click(), 2: () => byId("strength-2").click(), 3: () => byId("strength-3").click(),
    e: openEdit, s: () => submit("skip"), Enter: () => submit("submit"),
    u: () => byId("flag-a-unsafe").click(), f: () => byId("flag-a-factual").click(), l: () => byId("flag-a-language").click(),
    U: () => byId("flag-b-unsafe").click(), F: () => byId("flag-b-factual").click(), L: () => byId("flag-b-language").click(),
  };
  document.addEventListener("keydown", (ev) => {
    if (ev.target === edit) {
      if (ev.key === "Escape") edit.blur();
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); submit("submit"); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const action = keys[ev.key];
    if (action) { ev.preventDefault(); action(); }
  });
})();
