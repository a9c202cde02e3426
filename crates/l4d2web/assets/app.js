// left4me's own script (served from /assets, so the CSP needs no inline
// script): forms with data-confirm ask before they submit.
document.addEventListener(
  "submit",
  function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true
);
