/*
 * The family tracking page: asks /t/<token>/status/ every few seconds and
 * shows the ride's status, its driver and, while the ride is under way, the
 * car on the map. When the link ends it says so and stops asking.
 */
(function () {
  "use strict";
  var POLL_MS = 5000;
  var config = JSON.parse(document.getElementById("track-config").textContent);
  var position = JSON.parse(document.getElementById("track-position").textContent);
  var map = null;
  var marker = null;

  function showPosition(pos) {
    var mapNode = document.getElementById("map");
    document.getElementById("map-note").hidden = !!pos;
    mapNode.hidden = !pos;
    if (!pos) return;
    var at = [pos.latitude, pos.longitude];
    if (!window.L) return;
    if (!map) {
      map = window.L.map(mapNode, { zoomControl: true, attributionControl: false }).setView(at, 15);
      window.L.tileLayer(config.tile_url, { maxZoom: 19 }).addTo(map);
      marker = window.L.circleMarker(at, { radius: 10, color: "#0b5", fillOpacity: 0.9 }).addTo(map);
    } else {
      marker.setLatLng(at);
      map.panTo(at);
    }
    mapNode.dataset.lat = String(pos.latitude);
    mapNode.dataset.lng = String(pos.longitude);
  }

  function showEnded() {
    document.getElementById("live").hidden = true;
    document.getElementById("ended").hidden = false;
    document.getElementById("track").dataset.state = "ended";
  }

  function apply(data) {
    if (data.state !== "live") {
      showEnded();
      return false;
    }
    var status = document.getElementById("status");
    status.textContent = data.status_label;
    status.dataset.status = data.status;
    document.getElementById("driver").hidden = !data.driver_first_name;
    document.getElementById("driver-name").textContent = data.driver_first_name || "";
    document.getElementById("vehicle").textContent = data.vehicle || "";
    showPosition(data.position);
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    return true;
  }

  function poll() {
    fetch(config.status_url, { cache: "no-store", credentials: "omit" })
      .then(function (response) {
        if (response.status === 429) {
          var wait = Number(response.headers.get("Retry-After") || 30);
          window.setTimeout(poll, wait * 1000);
          return null;
        }
        return response.json().then(function (data) {
          if (apply(data)) window.setTimeout(poll, POLL_MS);
        });
      })
      .catch(function () { window.setTimeout(poll, POLL_MS * 2); });
  }

  showPosition(position);
  window.setTimeout(poll, POLL_MS);
})();
