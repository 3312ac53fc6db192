// The pages' one script, served from our origin (CSP script-src 'self', no inline
// script). Every page works without it; it reports the browser's time zone (a cookie),
// closes the account menu on Escape and
// when focus leaves it, and keeps the permission list out of a post while
// "All permissions" is chosen, so ticks that cannot be seen are never sent.
(function () {
  "use strict";
  // The browser's time zone, so that "access until" is shown and read in it (pages/zones.py).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; SameSite=Lax";
  } catch (e) { /* UTC, said beside the field */ }
  document.querySelectorAll("details.menu").forEach(function (menu) {
    var summary = menu.querySelector("summary");
    menu.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        if (summary) summary.focus();
      }
    });
    menu.addEventListener("focusout", function (event) {
      if (menu.open && !menu.contains(event.relatedTarget)) menu.open = false;
    });
    document.addEventListener("click", function (event) {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
  });
  document.querySelectorAll("fieldset.access").forEach(function (access) {
    var all = access.querySelector("#access-all");
    var boxes = access.querySelectorAll(".permissions input");  // ticks and resource ids
    function sync() {
      var off = all !== null && all.checked && !access.classList.contains("ambiguous");
      boxes.forEach(function (box) { box.disabled = off; });
    }
    access.querySelectorAll("input[name=access]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        access.classList.remove("ambiguous");
        sync();
      });
    });
    sync();
  });
})();
