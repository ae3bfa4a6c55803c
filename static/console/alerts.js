/*
 * The alert lane (templates/console/alerts.html): a sound (a WebAudio beep)
 * and a desktop notification for each new alarm, driver waiting at the door
 * and ride waiting too long; the browser's permission and the audio are
 * asked for on the dispatcher's click. And a full-width banner while the
 * board's live socket is down.
 */
(function () {
  "use strict";
  var announced = null; // keys of the items already announced (null: the page just loaded)
  var audio = null;
  var banner = document.getElementById("live-banner");

  function visibleItems() {
    return Array.prototype.filter.call(
      document.querySelectorAll("#alerts [data-alert-notify]"),
      function (node) { return !node.hidden; }
    );
  }

  function beep() {
    if (!audio) return;
    var oscillator = audio.createOscillator();
    var gain = audio.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.25, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
    oscillator.connect(gain);
    gain.connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.6);
  }

  function notify(texts) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    new Notification("Care Connect: needs attention", { body: texts.join("\n"), tag: "cc-alerts" });
  }

  function reveal() {
    var now = Date.now();
    document.querySelectorAll("#alerts [data-show-after][hidden]").forEach(function (node) {
      var at = Date.parse(node.getAttribute("data-show-after"));
      if (!isNaN(at) && now >= at) node.hidden = false;
    });
  }

  function check() {
    reveal();
    label(); // a re-rendered lane comes with the button's first words
    var items = visibleItems();
    var fresh = [];
    var keys = {};
    items.forEach(function (node) {
      var key = node.getAttribute("data-alert-key");
      keys[key] = true;
      if (announced && !announced[key]) fresh.push(node.getAttribute("data-alert-text"));
    });
    announced = Object.assign(announced || {}, keys);
    var empty = document.querySelector("#alerts .alerts-empty");
    if (empty) empty.hidden = document.querySelectorAll("#alerts .alert:not([hidden])").length > 0;
    if (fresh.length) {
      document.body.dataset.alertsAnnounced = String(Number(document.body.dataset.alertsAnnounced || 0) + fresh.length);
      beep();
      notify(fresh);
    }
  }

  function label() {
    var button = document.querySelector("[data-alerts-enable]");
    if (!button) return;
    var on = audio !== null;
    var permission = "Notification" in window ? Notification.permission : "unsupported";
    button.textContent = on
      ? "Sound on" + (permission === "granted" ? ", desktop alerts on" : ", desktop alerts off")
      : "Turn on sound and desktop alerts";
    button.setAttribute("aria-pressed", on ? "true" : "false");
  }

  document.addEventListener("click", function (event) {
    if (!event.target.closest("[data-alerts-enable]")) return;
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) audio = new Context();
    if (audio && audio.state === "suspended") audio.resume();
    if ("Notification" in window && Notification.permission === "default") {
      Notification.requestPermission().then(label);
    }
    beep();
    label();
  });

  document.body.addEventListener("htmx:wsOpen", function () {
    if (banner) banner.hidden = true;
  });
  document.body.addEventListener("htmx:wsClose", function () {
    if (banner) banner.hidden = false;
  });
  document.body.addEventListener("htmx:wsAfterMessage", check);
  document.body.addEventListener("htmx:afterSettle", check);

  check();
  window.setInterval(check, 5000);
})();
