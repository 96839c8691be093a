// Filters a table's body rows by the text typed into an <input data-filter-for="TABLE_ID">, and
// sorts a table.sortable by the column whose header button is pressed (cells carry data-sort).
(function () {
  function norm(text) { return text.toLowerCase().replace(/,/g, ''); }
  var inputs = document.querySelectorAll('input[data-filter-for]');
  Array.prototype.forEach.call(inputs, function (input) {
    var table = document.getElementById(input.getAttribute('data-filter-for'));
    var status = document.getElementById(input.getAttribute('data-filter-status'));
    if (!table || !table.tBodies[0]) return;
    function update() {
      var rows = Array.prototype.slice.call(table.tBodies[0].rows);
      var q = norm(input.value.trim());
      var shown = 0;
      rows.forEach(function (row) {
        var text = norm((row.getAttribute('data-filter') || '') + ' ' + row.textContent);
        var hit = q === '' || text.indexOf(q) !== -1;
        row.hidden = !hit;
        if (hit) shown++;
      });
      if (status) status.textContent = q === '' ? rows.length + ' rows' : shown + ' of ' + rows.length + ' rows match';
    }
    input.addEventListener('input', update);
    update();
  });

  function key(cell, numeric) {
    var v = cell ? cell.getAttribute('data-sort') : null;
    if (v === null) v = cell ? cell.textContent.trim() : '';
    if (!numeric) return v.toLowerCase();
    var n = Number(v);
    return isNaN(n) ? -Infinity : n;
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      var label = th.textContent;
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'sort';
      button.textContent = label;
      th.textContent = '';
      th.appendChild(button);
      button.addEventListener('click', function () {
        var numeric = th.getAttribute('data-sort-type') === 'num';
        var current = th.getAttribute('aria-sort');
        // numbers and money start with the largest, text from A
        var dir = current === 'descending' ? 'ascending' : current === 'ascending' ? 'descending' : numeric ? 'descending' : 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).map(function (row, i) { return { row: row, i: i, k: key(row.cells[col], numeric) }; });
        rows.sort(function (a, b) {
          var c = a.k < b.k ? -1 : a.k > b.k ? 1 : 0;
          return (dir === 'ascending' ? c : -c) || a.i - b.i;
        });
        rows.forEach(function (r) { body.appendChild(r.row); });
      });
    });
  });
})();
