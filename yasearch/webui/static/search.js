/* yasearch search box: suggestions as you type, and "/" to jump to the box.
 *
 * Progressive enhancement only: without this script the box is a plain GET form.
 * The suggestions follow the WAI-ARIA listbox pattern: the input keeps focus and
 * points at the highlighted option with aria-activedescendant; ArrowDown/ArrowUp
 * move, Enter picks (and searches), Escape closes, a click picks. Suggestions are
 * inserted with textContent, never as HTML: they come from crawled titles.
 */
(function () {
  "use strict";

  var DEBOUNCE_MS = 120;
  var LIMIT = 8;

  function isTyping(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // "/" focuses the search box (like many sites), unless the user is typing somewhere.
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey || isTyping(ev.target)) return;
    var box = document.getElementById("q");
    if (!box) return;
    ev.preventDefault();
    box.focus();
    box.select();
  });

  function setup(wrap) {
    var input = wrap.querySelector("input[type=search]");
    var form = input && input.form;
    var endpoint = wrap.getAttribute("data-suggest");
    if (!input || !form || !endpoint || !window.fetch) return;

    var listId = input.id + "-suggestions";
    var list = document.createElement("ul");
    list.id = listId;
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Suggestions");
    list.hidden = true;
    wrap.appendChild(list);

    var live = document.createElement("div");
    live.className = "visually-hidden";
    live.setAttribute("role", "status");
    live.setAttribute("aria-live", "polite");
    wrap.appendChild(live);

    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", listId);
    input.setAttribute("aria-expanded", "false");

    var items = [];       // suggestion strings currently shown
    var active = -1;      // index of the highlighted option, -1 for none
    var timer = null;
    var controller = null;
    var seq = 0;          // only the answer to the latest request is shown
    var cache = Object.create(null);
    var typed = input.value;

    function close() {
      list.hidden = true;
      list.textContent = "";
      items = [];
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }

    function highlight(i) {
      var options = list.children;
      if (active >= 0 && options[active]) options[active].setAttribute("aria-selected", "false");
      active = i;
      if (active >= 0 && options[active]) {
        options[active].setAttribute("aria-selected", "true");
        input.setAttribute("aria-activedescendant", options[active].id);
        options[active].scrollIntoView({ block: "nearest" });
        input.value = items[active];
      } else {
        input.removeAttribute("aria-activedescendant");
        input.value = typed;
      }
    }

    function choose(i) {
      if (i < 0 || i >= items.length) return;
      input.value = items[i];
      close();
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    }

    function show(query, suggestions) {
      if (input.value !== query || document.activeElement !== input) return;
      items = suggestions.filter(function (s) {
        return typeof s === "string" && s && s !== query;
      }).slice(0, LIMIT);
      list.textContent = "";
      active = -1;
      input.removeAttribute("aria-activedescendant");
      if (!items.length) {
        close();
        return;
      }
      items.forEach(function (text, i) {
        var li = document.createElement("li");
        li.id = listId + "-" + i;
        li.className = "suggestion";
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        // the part already typed in normal weight, the completion in bold
        if (text.lastIndexOf(query, 0) === 0) {
          li.appendChild(document.createTextNode(query));
          var b = document.createElement("b");
          b.textContent = text.slice(query.length);
          li.appendChild(b);
        } else {
          li.textContent = text;
        }
        // mousedown would blur the input before the click lands
        li.addEventListener("mousedown", function (ev) { ev.preventDefault(); });
        li.addEventListener("click", function () { choose(i); });
        list.appendChild(li);
      });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      live.textContent = items.length + (items.length === 1 ? " suggestion" : " suggestions") +
        ", use the up and down arrow keys to choose";
    }

    function fetchSuggestions(query) {
      if (cache[query]) {
        show(query, cache[query]);
        return;
      }
      if (controller) controller.abort();
      controller = window.AbortController ? new AbortController() : null;
      var mine = ++seq;
      var url = endpoint + "?" + new URLSearchParams({ q: query, limit: String(LIMIT) }).toString();
      fetch(url, { headers: { Accept: "application/json" }, signal: controller ? controller.signal : undefined })
        .then(function (r) { return r.ok ? r.json() : { suggestions: [] }; })
        .then(function (data) {
          var got = data && Array.isArray(data.suggestions) ? data.suggestions : [];
          cache[query] = got;
          if (mine === seq) show(query, got);
        })
        .catch(function () { /* aborted or offline: no suggestions, the form still works */ });
    }

    input.addEventListener("input", function () {
      typed = input.value;
      clearTimeout(timer);
      var query = input.value;
      if (!query.trim() || /\s$/.test(query)) {
        if (controller) controller.abort();
        seq++;
        close();
        return;
      }
      timer = setTimeout(function () { fetchSuggestions(query); }, DEBOUNCE_MS);
    });

    input.addEventListener("keydown", function (ev) {
      var open = !list.hidden && items.length > 0;
      if (ev.key === "ArrowDown" || ev.key === "Down") {
        if (!open) return;
        ev.preventDefault();
        highlight(active + 1 < items.length ? active + 1 : -1);
      } else if (ev.key === "ArrowUp" || ev.key === "Up") {
        if (!open) return;
        ev.preventDefault();
        highlight(active <= -1 ? items.length - 1 : active - 1);
      } else if (ev.key === "Enter") {
        if (open && active >= 0) {
          ev.preventDefault();
          choose(active);
        } else {
          close();  // a plain submit of what was typed
        }
      } else if (ev.key === "Escape" || ev.key === "Esc") {
        if (open) {
          ev.preventDefault();  // keep type=search from also clearing the box
          input.value = typed;
          close();
        }
      } else if (ev.key === "Tab") {
        close();
      }
    });

    input.addEventListener("blur", function () { close(); });
    // back/forward cache: a restored page must not show a stale list
    window.addEventListener("pageshow", function () { typed = input.value; close(); });
  }

  var boxes = document.querySelectorAll(".searchbox .ac[data-suggest]");
  for (var i = 0; i < boxes.length; i++) setup(boxes[i]);
})();
