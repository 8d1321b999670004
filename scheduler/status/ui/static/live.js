// Live refresh of a running application's page: poll the REST API; when the
// answer changes, fetch this page again and swap its content. Without
// JavaScript the page is the same, only static.
(function () {
  "use strict";
  var body = document.body;
  if (!body || body.getAttribute("data-live") !== "1" || !window.fetch) return;
  var poll = body.getAttribute("data-poll");
  var last = null;
  function tick() {
    fetch(poll, {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (text) {
      if (text === last) return null;
      var first = last === null;
      last = text;
      if (first) return null;
      return fetch(window.location.href, {cache: "no-store"}).then(function (r) { return r.text(); });
    }).then(function (page) {
      if (!page) return;
      var doc = new DOMParser().parseFromString(page, "text/html");
      var fresh = doc.getElementById("content");
      var here = document.getElementById("content");
      if (fresh && here) {
        var open = Array.prototype.map.call(here.querySelectorAll("details"), function (d) { return d.open; });
        here.innerHTML = fresh.innerHTML;
        Array.prototype.forEach.call(here.querySelectorAll("details"), function (d, i) {
          if (i < open.length) d.open = open[i];
        });
      }
      if (doc.body.getAttribute("data-live") !== "1") { body.setAttribute("data-live", "0"); }
    }).catch(function () {}).then(function () {
      if (body.getAttribute("data-live") === "1") window.setTimeout(tick, 2000);
    });
  }
  window.setTimeout(tick, 2000);
})();
