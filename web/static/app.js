// Copy buttons and confirmations; the page works without this script.
document.addEventListener("click", async (e) => {
  const button = e.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  // Select the text too, so that it can be copied by hand where the clipboard API is refused.
  const range = document.createRange();
  range.selectNodeContents(source);
  getSelection().removeAllRanges();
  getSelection().addRange(range);
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
  } catch {
    document.execCommand("copy");
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
});
document.addEventListener("submit", (e) => {
  const message = (e.submitter && e.submitter.dataset.confirm) || e.target.dataset.confirm;
  if (message && !confirm(message)) e.preventDefault();
});
// The manager box offers users as one types (the server checks the name on save).
let suggestTimer;
document.addEventListener("input", (e) => {
  const box = e.target.closest("input[data-suggest]");
  if (!box) return;
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    const q = box.value.trim();
    if (q.length < 2) return;
    const res = await fetch(box.dataset.suggest + "?q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } });
    if (!res.ok) return;
    const list = document.getElementById(box.getAttribute("list"));
    list.replaceChildren(...(await res.json()).map((u) => {
      const option = document.createElement("option");
      option.value = u.userName;
      option.label = u.name ? u.name + " (" + u.userName + ")" : u.userName;
      return option;
    }));
  }, 200);
});
