// Display equations fit the printed column. MathJax 3 does not break lines, so an
// equation wider than the column is scaled down while the page is printed (print.css
// turns the equations' scroll boxes off there), and restored afterwards.
// tests/test_browser_print.py checks that no equation of any chapter overflows.
(() => {
  const EQUATIONS = 'mjx-container[display="true"]';
  // A4 less the left and right margins of print.css's @page (14 mm each), in px.
  const PRINT_COLUMN_PX = 688;
  const fit = () => {
    document.querySelectorAll(EQUATIONS).forEach((el) => {
      if (el.dataset.screenFontSize === undefined) {
        el.dataset.screenFontSize = el.style.fontSize;
      }
      el.style.fontSize = el.dataset.screenFontSize;
      // Under print media the column is the paper's; a browser's print dialog
      // calls "beforeprint" while the screen layout still holds, so the column is
      // then at most the paper's, less what surrounds the equation in the article.
      const math = el.querySelector("mjx-math");
      const natural = math ? math.getBoundingClientRect().width : el.scrollWidth;
      const article = el.closest("article") || document.body;
      const inset = Math.max(article.clientWidth - el.clientWidth, 0);
      const column = Math.min(el.clientWidth, PRINT_COLUMN_PX - inset);
      const wide = Math.max(natural, el.scrollWidth) / Math.max(column, 1);
      if (wide > 1) {
        const base = parseFloat(el.dataset.screenFontSize) || 100;
        el.style.fontSize = `${Math.floor((base / wide) * 0.98 * 10) / 10}%`;
      }
    });
  };
  const restore = () => {
    document.querySelectorAll(EQUATIONS).forEach((el) => {
      if (el.dataset.screenFontSize !== undefined) {
        el.style.fontSize = el.dataset.screenFontSize;
        delete el.dataset.screenFontSize;
      }
    });
  };
  const print = window.matchMedia("print");
  print.addEventListener("change", (event) => (event.matches ? fit() : restore()));
  window.addEventListener("beforeprint", fit);
  window.addEventListener("afterprint", restore);
})();
