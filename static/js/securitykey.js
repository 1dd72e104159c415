// Security keys: what django-otp-webauthn's scripts (static/vendor/django-otp-webauthn)
// need around them. A file of its own: the Content-Security-Policy allows no inline script.
// - gettext(): they call it for their messages; the package's catalog view is not mounted.
// - after a key is added, go to the page that shows the recovery codes (data-done-url);
// - a sign-in locked out by a wrong answer starts over (the page says why on reload).
(function () {
  "use strict";
  if (typeof window.gettext !== "function") {
    window.gettext = function (text) { return text; };
  }
  document.addEventListener("otp_webauthn.register_complete", function () {
    var done = document.querySelector("[data-done-url]");
    if (done) window.location.assign(done.getAttribute("data-done-url"));
  });
  document.addEventListener("otp_webauthn.verification_failed", function (event) {
    var response = event.detail && event.detail.response;
    if (response && response.status === 429) window.location.reload();
  });
})();
