/*
 * What a dispatcher is told when a click's request fails. htmx swaps in a
 * successful answer only: a refusal (403: the session ended, or the role
 * or the second factor changed, say by signing in elsewhere; 404; 409), a
 * server error or no answer at all would leave the click doing nothing.
 * Every console page (templates/console/base.html) says so in
 * #request-failed, an alert, with what to do; the dispatcher's next request
 * that works takes it away (not a refresh the page makes on its own, which
 * could hide it before it was read).
 *
 * Each request is followed on its XMLHttpRequest, not through htmx's
 * events: those are dispatched on the element that made the request, and
 * the live board may have replaced that element (its list re-rendered)
 * before the answer came, so they would reach nobody.
 */
(function () {
  "use strict";
  var box = document.getElementById("request-failed");
  if (!box) return;
  var text = box.querySelector("[data-request-failed-text]");

  function words(status) {
    if (status === 401 || status === 403) {
      return "Your session ended or your access changed (perhaps you signed in elsewhere). " +
        "Reload the page and sign in again.";
    }
    if (status === 404) {
      return "What you clicked is no longer there. Reload the page to see how things stand now.";
    }
    if (status === 409) {
      return "Someone changed this meanwhile. Reload the page to see how it stands now, then try again.";
    }
    if (status === 429) return "Too many requests at once: wait a moment, then try again.";
    if (status >= 500) {
      return "The server could not do this (error " + status + "): try again in a moment. " +
        "If it keeps failing, reload the page.";
    }
    return "The server refused this (error " + status + "). Reload the page and try again.";
  }

  function show(message) {
    text.textContent = message;
    box.hidden = false;
  }

  function byTheDispatcher(detail) {
    var config = detail.requestConfig;
    var cause = config && config.triggeringEvent;
    return Boolean(cause && cause.isTrusted);
  }

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var detail = event.detail || {};
    var xhr = detail.xhr;
    if (!xhr) return;
    var asked = byTheDispatcher(detail);
    xhr.addEventListener("load", function () {
      if (xhr.status >= 400) show(words(xhr.status));
      else if (asked) box.hidden = true;
    });
    // Not "abort": htmx abandons a request a newer one replaced.
    xhr.addEventListener("error", function () {
      show("The console could not reach the server: check the connection, then try again.");
    });
  });
  box.addEventListener("click", function (event) {
    if (event.target.closest("[data-request-failed-dismiss]")) box.hidden = true;
  });
})();
