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

// Long-lived lists stay bounded: a console keeps its last data-keep
// lines, a list of recent events its first data-keep entries.
function keepBounded(event) {
  var el = event.target;
  var keep = el && el.getAttribute && parseInt(el.getAttribute("data-keep"), 10);
  if (!keep) {
    return;
  }
  var fromEnd = el.getAttribute("data-keep-end") === "first";
  while (el.childElementCount > keep) {
    el.removeChild(fromEnd ? el.lastElementChild : el.firstElementChild);
  }
  if (!fromEnd) {
    el.scrollTop = el.scrollHeight;
  }
}
document.addEventListener("htmx:afterSwap", keepBounded);
document.addEventListener("htmx:sseMessage", keepBounded);

// The server page's command line: cleared after each command, which is
// kept (per server, for this tab) for the up and down arrows.
(function () {
  function history(form) {
    var key = "left4me-console-" + form.getAttribute("data-server");
    try {
      return { key: key, items: JSON.parse(sessionStorage.getItem(key) || "[]") };
    } catch (e) {
      return { key: key, items: [] };
    }
  }
  var position = -1;
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    if (!form || form.id !== "console-input") {
      return;
    }
    var input = form.querySelector("#console-command");
    var h = history(form);
    if (input.value && h.items[h.items.length - 1] !== input.value) {
      h.items.push(input.value);
      h.items = h.items.slice(-50);
      try {
        sessionStorage.setItem(h.key, JSON.stringify(h.items));
      } catch (e) {}
    }
    position = -1;
    input.value = "";
    input.focus();
  });
  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (!input || input.id !== "console-command" || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) {
      return;
    }
    var h = history(input.form);
    if (!h.items.length) {
      return;
    }
    event.preventDefault();
    if (event.key === "ArrowUp") {
      position = position < 0 ? h.items.length - 1 : Math.max(0, position - 1);
    } else {
      position = position < 0 ? -1 : position + 1;
      if (position >= h.items.length) {
        position = -1;
      }
    }
    input.value = position < 0 ? "" : h.items[position];
  });
})();
