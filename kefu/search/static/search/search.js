// The workspace search box: keyboard focus and moving through the results.
//
// "/" focuses the box unless the agent is typing somewhere else; Ctrl+K (Cmd+K on a Mac)
// focuses it from anywhere, even a reply being written. In the box, Escape clears it (a second
// Escape leaves it) and ArrowDown moves into the results; in the results, ArrowUp/ArrowDown move
// between hits and Escape goes back to the box. The results themselves arrive over htmx
// (hx-trigger on the input: debounced, the previous request cancelled).
(function () {
  "use strict";

  function box() {
    return document.querySelector("[data-search-shortcut]");
  }

  function editing(target) {
    if (!target || !target.tagName) return false;
    const tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function hits() {
    return Array.from(document.querySelectorAll("#search-results .search-hit a"));
  }

  function focusBox(input) {
    input.focus();
    input.select();
  }

  document.addEventListener("keydown", function (event) {
    const input = box();
    if (!input || event.defaultPrevented) return;
    const palette = (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k";
    const slash = event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey;
    if (palette || (slash && !editing(event.target))) {
      event.preventDefault();
      focusBox(input);
      return;
    }
    if (event.target === input) {
      if (event.key === "Escape") {
        event.preventDefault();
        if (input.value) {
          input.value = "";
          // The same event htmx listens to: an empty query empties the results.
          input.dispatchEvent(new Event("input", { bubbles: true }));
        } else {
          input.blur();
        }
      } else if (event.key === "ArrowDown" && hits().length) {
        event.preventDefault();
        hits()[0].focus();
      }
      return;
    }
    const list = hits();
    const at = list.indexOf(document.activeElement);
    if (at < 0) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = at + (event.key === "ArrowDown" ? 1 : -1);
      if (next < 0) focusBox(input);
      else list[Math.min(next, list.length - 1)].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      focusBox(input);
    }
  });
})();
