// Copy buttons: <button data-copy="ID"> copies the text of element ID.
// A file of its own: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  if (!navigator.clipboard) return; // the button stays hidden: select the text instead
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    // The status line of the block the button sits in: a page section, or the welcome
    // sheet (an <article>).
    var block = button.closest("section, article");
    var status = block && block.querySelector(".copy-status");
    navigator.clipboard.writeText(source.textContent).then(function () {
      if (status) status.textContent = "Copied to the clipboard.";
    }, function () {
      if (status) status.textContent = "Could not copy: select the text and copy it.";
    });
  });
})();
