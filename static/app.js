// Small conveniences only: every page works without this file.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.value || source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 2000);
  });
});
// A message the server wrote about the last submission belongs to it: when the browser stops
// the next one with its own bubble, the old message would sit beside it, so it goes.
document.addEventListener("invalid", (event) => {
  const form = event.target.form;
  if (!form) return;
  for (const error of form.querySelectorAll(".field-error")) error.remove();
  for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
  for (const alert of form.parentElement.querySelectorAll(":scope > .alert[role=alert]")) alert.remove();
}, true);
