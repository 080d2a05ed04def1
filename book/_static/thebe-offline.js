// Live Code without a network: sphinx-thebe 0.3 loads thebe from a CDN when the
// reader clicks "Live Code" and shows "Loading thebe from CDN..." until it arrives;
// offline it never does. Once that script fails to load, or has not loaded after
// a few seconds, the button says what live code needs and what works instead.
// tests/test_browser_thebe.py checks it with every outside request blocked.
(() => {
  const WAIT_MS = 5000;
  const MESSAGE =
    "Live code needs a network connection: it loads thebe from unpkg.com and " +
    "runs the code on mybinder.org. Online, the Binder button (rocket icon) opens " +
    "this notebook in JupyterLab; offline, run the notebook in a local Jupyter.";
  const explain = () => {
    if (typeof thebelab !== "undefined") return; // thebe arrived: it reports itself
    document.querySelectorAll(".thebe-launch-button").forEach((button) => {
      button.classList.add("thebe-offline");
      button.setAttribute("aria-live", "polite");
      button.textContent = MESSAGE;
    });
  };
  const watch = (script) => {
    script.addEventListener("error", explain);
    window.setTimeout(explain, WAIT_MS);
  };
  const isThebe = (node) =>
    node.tagName === "SCRIPT" &&
    typeof THEBE_JS_URL !== "undefined" &&
    node.src === THEBE_JS_URL;
  new MutationObserver((mutations) => {
    mutations.forEach((mutation) =>
      mutation.addedNodes.forEach((node) => isThebe(node) && watch(node)),
    );
  }).observe(document.head, { childList: true });
})();
