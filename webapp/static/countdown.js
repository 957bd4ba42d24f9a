// Counts down the validity of a QR code on the page. The server decides on
// expiry; this only tells the user how long is left.
(function () {
  "use strict";
  var element = document.querySelector("[data-expires-in]");
  if (!element) {
    return;
  }
  var deadline = Date.now() + 1000 * parseInt(element.getAttribute("data-expires-in"), 10);
  function show() {
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    if (left === 0) {
      element.textContent = "now: this QR code has expired, start again";
      return;
    }
    element.textContent = Math.floor(left / 60) + " min " + (left % 60) + " s";
    window.setTimeout(show, 1000);
  }
  show();
})();
