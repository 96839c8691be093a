// Filters a table's body rows by the text typed into an <input data-filter-for="TABLE_ID">.
(function () {
  var inputs = document.querySelectorAll('input[data-filter-for]');
  Array.prototype.forEach.call(inputs, function (input) {
    var table = document.getElementById(input.getAttribute('data-filter-for'));
    var status = document.getElementById(input.getAttribute('data-filter-status'));
    if (!table || !table.tBodies[0]) return;
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var text = rows.map(function (row) { return (row.getAttribute('data-filter') || row.textContent || '').toLowerCase(); });
    function update() {
      var q = input.value.trim().toLowerCase();
      var shown = 0;
      rows.forEach(function (row, i) {
        var hit = q === '' || text[i].indexOf(q) !== -1;
        row.hidden = !hit;
        if (hit) shown++;
      });
      if (status) status.textContent = q === '' ? rows.length + ' rows' : shown + ' of ' + rows.length + ' rows match';
    }
    input.addEventListener('input', update);
    update();
  });
})();
