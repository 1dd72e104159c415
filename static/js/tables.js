// Phone-width tables: panel.css stacks each row into a card below 40rem, and shows
// each cell's data-label before it. This copies every column header's text into
// the data-label of that column's cells, so no template has to repeat it. Without
// this script the cells still stack, only unlabelled. A file of its own: the
// Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };

  function labelTable(table) {
    var head = table.tHead;
    if (!head || !head.rows.length) return;
    var names = [];
    each(head.rows[head.rows.length - 1].cells, function (cell) {
      var text = cell.textContent.replace(/\s+/g, " ").trim();
      for (var i = 0; i < cell.colSpan; i++) names.push(text);
    });
    each(table.tBodies, function (body) {
      each(body.rows, function (row) {
        var column = 0;
        each(row.cells, function (cell) {
          // A cell spanning columns ("No mailboxes match.") belongs to none of them;
          // an empty cell needs no heading of its own.
          var empty = !cell.children.length && !cell.textContent.trim();
          if (cell.colSpan === 1 && names[column] && !empty && !cell.hasAttribute("data-label")) {
            cell.setAttribute("data-label", names[column]);
          }
          column += cell.colSpan;
        });
      });
    });
  }

  function labelWithin(root) {
    if (!root || !root.querySelectorAll) return;
    // Rows swapped into a table: label that table; content holding tables: label those.
    var table = root.closest && root.closest("table");
    if (table) labelTable(table);
    each(root.querySelectorAll("table"), labelTable);
  }

  labelWithin(document.documentElement);
  // htmx swaps in rows (search, pagination, polling): label what arrived.
  document.addEventListener("htmx:load", function (event) { labelWithin(event.target); });
  document.addEventListener("htmx:afterSwap", function (event) { labelWithin(event.target); });
})();
