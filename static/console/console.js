/*
 * Care Connect dispatch console: the live map and the page's small habits.
 *
 * The board's regions arrive as htmx out-of-band fragments over /ws/console/
 * (htmx's ws extension swaps them). JSON messages on the same socket are for
 * this script: "map.snapshot" (every marker, on connect), "map.drivers" and
 * "map.rides" (the markers that changed, and those that left), "map.positions"
 * (moved drivers, at most once per driver per batch) and "rides.changed"
 * (versions, so an open ride panel refreshes itself).
 *
 * Markers are Leaflet circle markers: vector paths drawn whether or not the
 * map tiles load. window.ccMap.markers holds them keyed "driver-<user id>"
 * and "ride-<ride_id>"; each path carries data-marker, data-kind and
 * data-state attributes for tests and styling.
 */
(function () {
  "use strict";

  var COLORS = {
    available: "#1f7a4d",
    on_trip: "#2463a8",
    stale: "#6b7280",
    pickup: "#c26a00",
    pickupUnmatched: "#b42318",
    pickupActive: "#6d4fc2"
  };
  var STATE_LABELS = {
    available: "Available",
    on_trip: "On trip",
    stale: "No recent signal"
  };
  var RESTYLE_EVERY_MS = 5000;
  // Initials on the markers from this zoom on (further out they only overlap).
  var LABELS_FROM_ZOOM = 9;

  function readJSON(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  var config = readJSON("map-config");
  var initial = readJSON("map-data");
  var skew = 0; // server clock minus this browser's clock, in seconds

  function serverNow() {
    return Date.now() / 1000 + skew;
  }

  function noteServerTime(data) {
    if (typeof data.server_now === "number") {
      skew = data.server_now - Date.now() / 1000;
    }
  }

  // --- small DOM helpers ---------------------------------------------------

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function ago(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    var rest = minutes % 60;
    if (hours < 24) return hours + " h" + (rest ? " " + rest + " min" : "");
    var days = Math.floor(hours / 24);
    return days + (days === 1 ? " day" : " days");
  }

  // --- the map ---------------------------------------------------------------

  var ccMap = {
    map: null,
    markers: {},
    drivers: {},
    rides: {},
    lines: {},
    count: function (kind) {
      return Object.keys(this.markers).filter(function (key) {
        return !kind || key.indexOf(kind + "-") === 0;
      }).length;
    }
  };
  window.ccMap = ccMap;

  // The server says when a driver turns stale (stale_at; null: never);
  // the map only compares it with the clock.
  function driverState(d) {
    if (d.stale_at !== null && d.stale_at !== undefined && serverNow() >= d.stale_at) {
      return "stale";
    }
    return d.status === "on_trip" ? "on_trip" : "available";
  }

  function rideState(r) {
    if (r.pending) return r.no_driver ? "unmatched" : "pending";
    return "active";
  }

  function rideColor(state) {
    if (state === "unmatched") return COLORS.pickupUnmatched;
    if (state === "pending") return COLORS.pickup;
    return COLORS.pickupActive;
  }

  function tag(marker, key, kind, state, title) {
    var path = marker.getElement && marker.getElement();
    if (!path) return;
    path.setAttribute("data-marker", key);
    path.setAttribute("data-kind", kind);
    path.setAttribute("data-state", state);
    // A hover title in SVG is a <title> child; its text is users' text, so
    // it goes in as text.
    var node = path.querySelector("title");
    if (!node) {
      node = document.createElementNS("http://www.w3.org/2000/svg", "title");
      path.appendChild(node);
    }
    node.textContent = title;
  }

  // "Ann Lee" -> "AL"; "Sipho" -> "SI"; a phone number -> its last two digits.
  function initials(name) {
    var words = String(name || "").trim().split(/\s+/).filter(Boolean);
    if (!words.length) return "?";
    if (/^\+?[\d\s]+$/.test(name)) return name.replace(/\D/g, "").slice(-2);
    if (words.length === 1) return words[0].slice(0, 2).toUpperCase();
    return (words[0].charAt(0) + words[words.length - 1].charAt(0)).toUpperCase();
  }
  ccMap.initials = initials;

  function driverPopup(id) {
    var d = ccMap.drivers[id];
    var box = make("div", "cc-popup");
    if (!d) return box;
    var state = driverState(d);
    box.appendChild(make("h3", null, d.name));
    var pill = make("span", "pill pill-" + (state === "on_trip" ? "trip" : state === "stale" ? "stale" : "ok"), STATE_LABELS[state]);
    box.appendChild(pill);
    if (state === "stale") box.appendChild(make("p", "muted", d.status_label + ", but no position report lately"));
    if (d.vehicle) box.appendChild(make("p", null, d.vehicle));
    if (d.ride_id) box.appendChild(make("p", null, "Ride " + d.ride_id + (d.passenger ? " with " + d.passenger : "")));
    else if (d.status === "available") box.appendChild(make("p", null, "Free for a ride"));
    if (d.demo) box.appendChild(make("p", "muted", "Demo driver (stands still)"));
    else if (d.ts) box.appendChild(make("p", "muted", "Last report " + ago(serverNow() - d.ts) + " ago"));
    if (d.phone) box.appendChild(make("p", null, d.phone));
    return box;
  }

  function ridePopup(rideId) {
    var r = ccMap.rides[rideId];
    var box = make("div", "cc-popup");
    if (!r) return box;
    box.appendChild(make("h3", null, "Pickup for " + r.passenger));
    var state = rideState(r);
    var tone = state === "unmatched" ? "danger" : state === "pending" ? "info" : "trip";
    var label = state === "unmatched" ? "No driver found" : r.status_label;
    box.appendChild(make("span", "pill pill-" + tone, label));
    box.appendChild(make("p", "muted", "Ride " + r.ride_id));
    if (r.pickup) box.appendChild(make("p", null, "From " + r.pickup));
    if (r.dropoff) box.appendChild(make("p", null, "To " + r.dropoff));
    if (r.driver) box.appendChild(make("p", null, "Driver " + r.driver));
    return box;
  }

  function styleDriver(marker, d) {
    var state = driverState(d);
    marker.setStyle({ fillColor: COLORS[state] });
    tag(marker, "driver-" + d.id, "driver", state, d.name + " · " + STATE_LABELS[state]);
  }

  // The marker at `key`, moved to `latlng`; made by `create(latlng)` and
  // put on the map the first time.
  function placeMarker(key, latlng, create) {
    var marker = ccMap.markers[key];
    if (marker) {
      marker.setLatLng(latlng);
    } else {
      marker = ccMap.markers[key] = create(latlng).addTo(ccMap.map);
    }
    return marker;
  }

  function putDriver(d) {
    ccMap.drivers[d.id] = d;
    var marker = placeMarker("driver-" + d.id, [d.lat, d.lng], function (at) {
      // Drivers sit in a pane above the pickups: a ring at the same spot
      // never covers a driver.
      var made = L.circleMarker(at, {
        radius: 11,
        weight: 2,
        color: "#ffffff",
        fillOpacity: 0.95,
        pane: "cc-drivers",
        className: "cc-marker cc-driver"
      });
      made.bindPopup(function () { return driverPopup(d.id); });
      // The driver's initials on the marker. Leaflet inserts a string as
      // HTML: names are users' text, so a text node.
      made.bindTooltip(make("span", null, initials(d.name)), {
        permanent: true,
        direction: "center",
        interactive: false,
        className: "cc-initials"
      });
      return made;
    });
    var label = marker.getTooltip() && marker.getTooltip().getContent();
    if (label && label.textContent !== initials(d.name)) label.textContent = initials(d.name);
    styleDriver(marker, d);
  }

  function putRide(r) {
    var key = "ride-" + r.ride_id;
    ccMap.rides[r.ride_id] = r;
    var state = rideState(r);
    var marker = placeMarker(key, [r.lat, r.lng], function (at) {
      // A ring, not a dot: pickups read differently from drivers without
      // colour. It sits in the pane under the drivers: a driver waiting at
      // the pickup shows inside it.
      var made = L.circleMarker(at, {
        radius: 15,
        weight: 4,
        fillColor: "#ffffff",
        fillOpacity: 0.35,
        pane: "cc-pickups",
        className: "cc-marker cc-ride"
      });
      made.bindPopup(function () { return ridePopup(r.ride_id); });
      return made;
    });
    marker.setStyle({ color: rideColor(state) });
    tag(marker, key, "ride", state, "Pickup · " + r.passenger + " · " + r.ride_id);
  }

  // Waiting pickups outside the view: a count at the map's edge; a click
  // brings them into view.
  function offscreenPending() {
    if (!ccMap.map) return [];
    var view = ccMap.map.getBounds();
    return Object.keys(ccMap.rides).filter(function (rideId) {
      var r = ccMap.rides[rideId];
      return r.pending && !view.contains([r.lat, r.lng]);
    });
  }

  function updateOffscreen() {
    var button = document.getElementById("map-offscreen");
    if (!button || !ccMap.map) return;
    var outside = offscreenPending();
    button.hidden = !outside.length;
    button.dataset.count = String(outside.length);
    button.textContent = outside.length === 1
      ? "1 waiting ride outside the view: show"
      : outside.length + " waiting rides outside the view: show";
  }
  ccMap.offscreenPending = offscreenPending;

  function showOffscreen() {
    var keys = offscreenPending().map(function (rideId) { return ccMap.markers["ride-" + rideId]; });
    if (!keys.length) return;
    var bounds = ccMap.map.getBounds();
    keys.forEach(function (marker) { bounds.extend(marker.getLatLng()); });
    ccMap.map.fitBounds(bounds, { padding: [30, 30] });
  }

  function drawLines() {
    var wanted = {};
    Object.keys(ccMap.rides).forEach(function (rideId) {
      var r = ccMap.rides[rideId];
      var d = r.driver_id ? ccMap.drivers[r.driver_id] : null;
      if (!d || r.status === "in_progress") return;
      wanted[rideId] = true;
      var points = [[d.lat, d.lng], [r.lat, r.lng]];
      var line = ccMap.lines[rideId];
      if (line) {
        line.setLatLngs(points);
      } else {
        ccMap.lines[rideId] = L.polyline(points, {
          color: COLORS.pickupActive,
          weight: 2,
          opacity: 0.6,
          dashArray: "6 6",
          interactive: false,
          className: "cc-line"
        }).addTo(ccMap.map);
      }
    });
    Object.keys(ccMap.lines).forEach(function (rideId) {
      if (!wanted[rideId]) {
        ccMap.lines[rideId].remove();
        delete ccMap.lines[rideId];
      }
    });
  }

  function removeMarker(key) {
    if (ccMap.markers[key]) {
      ccMap.markers[key].remove();
      delete ccMap.markers[key];
    }
  }

  function removeMissing(prefix, keep) {
    Object.keys(ccMap.markers).forEach(function (key) {
      if (key.indexOf(prefix) === 0 && !keep[key]) removeMarker(key);
    });
  }

  function applySnapshot(data) {
    noteServerTime(data);
    var keep = {};
    ccMap.drivers = {};
    data.drivers.forEach(function (d) {
      if (d.lat === null || d.lng === null) return;
      putDriver(d);
      keep["driver-" + d.id] = true;
    });
    removeMissing("driver-", keep);
    keep = {};
    ccMap.rides = {};
    data.rides.forEach(function (r) {
      putRide(r);
      keep["ride-" + r.ride_id] = true;
    });
    removeMissing("ride-", keep);
    drawLines();
    updateOffscreen();
  }

  function applyDrivers(data) {
    noteServerTime(data);
    data.drivers.forEach(function (d) {
      if (d.lat !== null && d.lng !== null) putDriver(d);
    });
    data.removed.forEach(function (id) {
      removeMarker("driver-" + id);
      delete ccMap.drivers[id];
    });
    drawLines();
  }

  function applyRides(data) {
    data.rides.forEach(putRide);
    data.removed.forEach(function (rideId) {
      removeMarker("ride-" + rideId);
      delete ccMap.rides[rideId];
    });
    drawLines();
    updateOffscreen();
  }

  function applyPositions(data) {
    noteServerTime(data);
    data.drivers.forEach(function (p) {
      var d = ccMap.drivers[p.id];
      // A driver the map does not show yet comes with its "map.drivers".
      if (!d) return;
      d.lat = p.lat;
      d.lng = p.lng;
      d.heading = p.heading;
      d.ts = p.ts;
      d.stale_at = p.stale_at;
      var marker = ccMap.markers["driver-" + p.id];
      marker.setLatLng([p.lat, p.lng]);
      styleDriver(marker, d);
    });
    drawLines();
  }

  function restyleDrivers() {
    Object.keys(ccMap.drivers).forEach(function (id) {
      var marker = ccMap.markers["driver-" + id];
      if (!marker) return;
      styleDriver(marker, ccMap.drivers[id]);
      if (marker.isPopupOpen()) marker.getPopup().update();
    });
    // The drivers panel flags a lost signal too, between server renders.
    document.querySelectorAll("#drivers tr[data-driver-id]").forEach(function (row) {
      var d = ccMap.drivers[row.dataset.driverId];
      if (!d) return;
      var stale = driverState(d) === "stale";
      row.classList.toggle("is-stale", stale);
      var flag = row.querySelector("[data-stale-flag]");
      if (flag) flag.hidden = !stale;
      var seen = row.querySelector("time[data-since]");
      if (seen && d.ts) seen.setAttribute("datetime", new Date((d.ts - skew) * 1000).toISOString());
    });
    updateClocks();
  }

  function fitAll() {
    var layers = Object.keys(ccMap.markers).map(function (k) { return ccMap.markers[k]; });
    if (!layers.length) {
      ccMap.map.setView([-29.0, 24.5], 5);
      return;
    }
    var bounds = L.featureGroup(layers).getBounds();
    ccMap.map.fitBounds(bounds, { padding: [40, 40], maxZoom: 13 });
  }

  function focusMarker(key) {
    var marker = ccMap.markers[key];
    if (!marker) return false;
    ccMap.map.setView(marker.getLatLng(), Math.max(ccMap.map.getZoom(), 13));
    marker.openPopup();
    return true;
  }
  ccMap.focus = focusMarker;
  ccMap.fitAll = fitAll;

  function initMap() {
    var node = document.getElementById("map");
    if (!node || !config || typeof L === "undefined") return;
    // A view first: Leaflet draws layers only once the map has one.
    ccMap.map = L.map(node, { zoomControl: true, worldCopyJump: true }).setView([-29.0, 24.5], 5);
    ccMap.map.createPane("cc-pickups").style.zIndex = 410;
    ccMap.map.createPane("cc-drivers").style.zIndex = 420;
    ccMap.map.on("moveend zoomend", function () {
      updateOffscreen();
      node.classList.toggle("cc-labels-off", ccMap.map.getZoom() < LABELS_FROM_ZOOM);
    });
    var tiles = L.tileLayer(config.tile_url, {
      maxZoom: 19,
      attribution: "&copy; OpenStreetMap contributors"
    });
    var note = document.getElementById("map-note");
    tiles.on("tileerror", function () { if (note) note.hidden = false; });
    tiles.on("tileload", function () { if (note) note.hidden = true; });
    tiles.addTo(ccMap.map);
    applySnapshot(initial || { drivers: [], rides: [] });
    fitAll();
    node.classList.toggle("cc-labels-off", ccMap.map.getZoom() < LABELS_FROM_ZOOM);
    window.setInterval(restyleDrivers, RESTYLE_EVERY_MS);
  }

  // --- the ride panel --------------------------------------------------------

  function panel() {
    return document.getElementById("ride-panel");
  }

  function closePanel() {
    var node = panel();
    if (!node) return;
    node.hidden = true;
    node.removeAttribute("data-ride-pk");
    node.replaceChildren();
  }

  var panelBusy = 0; // requests of this console's own on the panel in flight

  // The open panel again, as the ride stands now; the server says whether
  // it moved on from the version shown.
  function refreshPanel() {
    var node = panel();
    if (!node || node.hidden || !node.dataset.ridePk || panelBusy) return;
    var url = node.dataset.url + "?seen=" + encodeURIComponent(node.dataset.rideVersion);
    htmx.ajax("GET", url, { target: "#ride-panel", swap: "outerHTML" });
  }

  function refreshPanelIfChanged(rides) {
    var node = panel();
    if (!node || node.hidden) return;
    rides.forEach(function (r) {
      if (String(r.ride_pk) === node.dataset.ridePk && r.version > Number(node.dataset.rideVersion)) {
        refreshPanel();
      }
    });
  }

  function targetsPanel(event) {
    var target = event.detail && event.detail.target;
    return target && target.id === "ride-panel";
  }
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (targetsPanel(event)) panelBusy += 1;
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (targetsPanel(event)) panelBusy = Math.max(0, panelBusy - 1);
  });

  // --- clocks on the page: ages, and the no-show flag -----------------------------

  function updateClocks() {
    var now = Date.now();
    document.querySelectorAll("time[data-since]").forEach(function (node) {
      var since = Date.parse(node.getAttribute("datetime"));
      if (!isNaN(since)) node.textContent = ago((now - since) / 1000) + (node.dataset.suffix || "");
    });
    document.querySelectorAll("[data-show-after]").forEach(function (node) {
      var at = Date.parse(node.getAttribute("data-show-after"));
      if (!isNaN(at) && now >= at && node.hidden) {
        node.hidden = false;
        var card = node.closest(".ride-card");
        if (card) card.classList.add("is-waiting");
      }
    });
    var pending = document.querySelector('[data-count="pending"]');
    var count = pending ? Number(pending.textContent) : 0;
    var base = document.title.replace(/^\(\d+\) /, "");
    document.title = count ? "(" + count + ") " + base : base;
  }

  // --- offer countdowns -------------------------------------------------------

  function updateCountdowns() {
    var now = serverNow() * 1000;
    document.querySelectorAll("[data-countdown]").forEach(function (node) {
      var at = Date.parse(node.getAttribute("data-countdown"));
      if (isNaN(at)) return;
      var left = Math.max(0, Math.ceil((at - now) / 1000));
      node.textContent = left + " s";
      node.dataset.secondsLeft = String(left);
    });
  }

  // --- search: passenger name or phone, driver, ride id ---------------------------

  function searchInput() {
    return document.querySelector("[data-search-input]");
  }

  // Digits typed as a phone number match the stored digits ("27821234567")
  // whether typed with the country code, spaces, or a leading 0.
  function matches(haystack, query) {
    if (haystack.indexOf(query.text) !== -1) return true;
    if (query.digits.length >= 3) {
      var digits = query.digits.charAt(0) === "0" ? query.digits.slice(1) : query.digits;
      return haystack.replace(/\D/g, " ").split(/\s+/).some(function (number) {
        return number.length >= 7 && number.indexOf(digits) !== -1;
      });
    }
    return false;
  }

  function applySearch() {
    var input = searchInput();
    if (!input) return;
    var raw = input.value.trim().toLowerCase();
    var phoneLike = /^[+\d\s()-]+$/.test(raw);
    var query = { text: raw, digits: phoneLike ? raw.replace(/\D/g, "") : "" };
    var shown = 0;
    var hidden = 0;
    document.querySelectorAll(".board [data-search]").forEach(function (node) {
      var hit = !raw || matches(node.getAttribute("data-search").toLowerCase(), query);
      node.classList.toggle("is-filtered-out", !hit);
      if (hit) shown += 1; else hidden += 1;
    });
    var result = document.querySelector("[data-search-result]");
    if (result) result.textContent = raw ? shown + " found" + (hidden ? ", " + hidden + " hidden" : "") : "";
  }
  ccMap.applySearch = applySearch;

  var searchForm = document.querySelector("[data-board-search]");
  if (searchForm) {
    searchForm.addEventListener("submit", function (event) { event.preventDefault(); applySearch(); });
    searchInput().addEventListener("input", applySearch);
    searchInput().addEventListener("keydown", function (event) {
      if (event.key === "Escape") { searchInput().value = ""; applySearch(); }
    });
  }

  // --- the live socket --------------------------------------------------------

  function setLive(state, text) {
    var node = document.getElementById("live-status");
    if (!node) return;
    node.dataset.state = state;
    node.querySelector(".live-text").textContent = text;
  }

  document.body.addEventListener("htmx:wsBeforeMessage", function (event) {
    var text = event.detail.message;
    if (typeof text !== "string" || text.charAt(0) !== "{") return; // HTML: htmx swaps it
    event.preventDefault();
    var data;
    try {
      data = JSON.parse(text);
    } catch (err) {
      return;
    }
    if (!ccMap.map && data.type !== "rides.changed") return;
    if (data.type === "map.snapshot") applySnapshot(data);
    else if (data.type === "map.drivers") applyDrivers(data);
    else if (data.type === "map.rides") applyRides(data);
    else if (data.type === "map.positions") applyPositions(data);
    else if (data.type === "rides.changed") refreshPanelIfChanged(data.rides);
  });
  document.body.addEventListener("htmx:wsConnecting", function () { setLive("connecting", "Connecting…"); });
  // A reconnect brings the lists and the map back in its snapshot, but not
  // the open panel: what changed while the socket was down is fetched.
  var wasDown = false;
  document.body.addEventListener("htmx:wsOpen", function () {
    setLive("open", "Live");
    if (wasDown) refreshPanel();
    wasDown = false;
  });
  document.body.addEventListener("htmx:wsClose", function (event) {
    wasDown = true;
    var code = event.detail && event.detail.event ? event.detail.event.code : 0;
    if (code === 4403) {
      setLive("forbidden", "Signed out — reload to sign in");
      return;
    }
    setLive("closed", "Reconnecting…");
    // 1001 means the server is restarting (a deploy). htmx retries 1006 and
    // 1011-1013 by itself but not this one; the board must come back anyway.
    var wrapper = event.detail && event.detail.socketWrapper;
    if (code === 1001 && wrapper && wrapper.reconnect) {
      window.setTimeout(function () { wrapper.reconnect(); }, 1000 + Math.random() * 2000);
    }
  });
  document.body.addEventListener("htmx:wsAfterMessage", function () {
    updateClocks();
    updateCountdowns();
    applySearch();
    if (ccMap.map) restyleDrivers();
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    updateClocks();
    updateCountdowns();
    applySearch();
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "ride-panel") {
      var node = panel();
      if (node && !node.hidden) node.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  });

  // --- clicks -------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var focus = event.target.closest("[data-focus]");
    if (focus && ccMap.map) {
      if (focusMarker(focus.getAttribute("data-focus"))) {
        document.getElementById("map").scrollIntoView({ block: "nearest", behavior: "smooth" });
      }
      return;
    }
    if (event.target.closest("[data-fit]") && ccMap.map) {
      fitAll();
      return;
    }
    if (event.target.closest("[data-offscreen]") && ccMap.map) {
      showOffscreen();
      return;
    }
    if (event.target.closest("[data-close-panel]")) {
      event.preventDefault();
      closePanel();
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && panel() && !panel().hidden && event.target !== searchInput()) closePanel();
  });

  initMap();
  updateClocks();
  updateCountdowns();
  applySearch();
  window.setInterval(updateClocks, 15000);
  window.setInterval(updateCountdowns, 1000);
})();
