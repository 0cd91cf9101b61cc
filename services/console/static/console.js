// Progressive enhancement only: every page works without it. It ticks the countdowns
// every second, re-reads the page's content every few seconds (short polling) and
// swaps it in when it changed, tells when a clock is about to break, says when the
// session expired, and shows the remedy's approval path as the amount is typed.
(function () {
  "use strict";
  var lang = document.documentElement.lang;
  var main = document.getElementById("main");
  var banner = document.getElementById("live-banner");
  if (!main) { return; }
  var skew = Date.now() / 1000 - parseFloat(main.dataset.serverTime || Date.now() / 1000);

  function say(text) { banner.textContent = text; banner.hidden = !text; }

  function format(seconds) {
    var overdue = seconds < 0, total = Math.floor(Math.abs(seconds));
    var d = Math.floor(total / 86400), h = Math.floor(total % 86400 / 3600), m = Math.floor(total % 3600 / 60);
    var text;
    if (total < 60) {
      text = lang === "en" ? "<1 min" : "不到1分";
      return overdue ? (lang === "en" ? "overdue " : "已超时") + text : text;
    }
    if (lang === "en") {
      text = [d ? d + " d" : "", h ? h + " h" : "", d ? "" : m + " min"].filter(Boolean).join(" ") || "<1 min";
      return overdue ? "overdue " + text : text;
    }
    text = (d ? d + "天" : "") + (h ? h + "小时" : "") + (d ? "" : m + "分");
    return overdue ? "已超时" + text : text;
  }

  var warned = {};
  function tick() {
    var now = Date.now() / 1000 - skew;
    document.querySelectorAll(".clock[data-due]").forEach(function (clock) {
      var left = parseFloat(clock.dataset.due) - now;
      var shown = clock.querySelector(".clock-left");
      if (shown) { shown.textContent = format(left); }
      if (left <= 0 && !clock.classList.contains("breached")) {
        clock.classList.remove("running", "warning"); clock.classList.add("breached");
      }
      if (left > 0 && left < 600 && !warned[clock.dataset.due]) {  // ten minutes left
        warned[clock.dataset.due] = true;
        say(lang === "en" ? "A deadline is about to break!" : "有时限即将超时!");
      }
    });
  }
  tick();
  setInterval(tick, 1000);

  var poll = parseInt(main.dataset.poll || "0", 10);
  var busy = false;
  function refresh() {
    var active = document.activeElement;
    var editing = active && main.contains(active) && /INPUT|TEXTAREA|SELECT/.test(active.tagName);
    var typed = Array.prototype.some.call(main.querySelectorAll("textarea, input[type=text], input:not([type])"),
      function (f) { return f.value; });
    if (busy || editing || typed || document.hidden) { return; }  // never throw away what someone is typing
    busy = true;
    var url = location.pathname + (location.search ? location.search + "&" : "?") + "fragment=1";
    fetch(url, {credentials: "same-origin", redirect: "manual", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 401) {
          say(lang === "en" ? "Your session expired: please log in again." : "登录已过期,请重新登录。");
          busy = false; poll = 0; return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        busy = false;
        if (html === null || html === undefined) { return; }
        var openDetails = Array.prototype.map.call(main.querySelectorAll("details[open] summary"),
          function (s) { return s.textContent; });
        var before = main.querySelector("[data-updated]");
        var template = document.createElement("div");
        template.innerHTML = html;
        var after = template.querySelector("[data-updated]");
        var changed = before && after && before.dataset.updated !== after.dataset.updated;
        if (template.innerHTML.replace(/\s+/g, "") !== main.innerHTML.replace(/\s+/g, "")) {
          main.innerHTML = html;
          main.querySelectorAll("details summary").forEach(function (s) {
            if (openDetails.indexOf(s.textContent) >= 0) { s.parentNode.open = true; }
          });
          tick(); enhanceRemedy();
          if (changed) { say(lang === "en" ? "This case has changed." : "这个投诉单有更新。"); }
        }
      })
      .catch(function () { busy = false; });
  }
  if (poll > 0) { setInterval(function () { if (poll > 0) { refresh(); } }, poll * 1000); }

  function enhanceRemedy() {
    var form = document.getElementById("form-propose-remedy");
    var hint = document.getElementById("approval-hint");
    if (!form || !hint) { return; }
    var limits = JSON.parse(form.dataset.limits || "{}");
    var own = form.dataset.ownLimit === "" ? null : parseInt(form.dataset.ownLimit || "0", 10);
    var roles = JSON.parse(hint.dataset.roles || "{}");
    var ladder = ["store_manager", "regional_manager", "general_manager"];
    function update() {
      var type = (form.querySelector("input[name=type]:checked") || {}).value;
      var fen = Math.round(parseFloat((form.elements.amount.value || "0").replace(/,/g, "")) * 100) || 0;
      if (type === "apology" || fen <= 0 || own === null || fen <= own) { hint.textContent = hint.dataset.now; return; }
      var order = ["store_staff", "supervisor", "store_manager", "customer_service", "regional_manager",
                   "general_manager"];
      var mine = order.indexOf(form.dataset.role);
      var who = ladder.filter(function (role) {  // as routing: the lowest rung above whose limit covers it
        return order.indexOf(role) > mine && (limits[role] === null || (limits[role] !== undefined && fen <= limits[role]));
      })[0] || "general_manager";
      hint.textContent = hint.dataset.by.replace("{role}", roles[who] || who);
    }
    form.addEventListener("input", update);
    form.addEventListener("change", update);
  }
  enhanceRemedy();
})();
