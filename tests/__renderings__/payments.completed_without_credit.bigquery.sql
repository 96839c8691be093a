WITH completed AS (
        SELECT * FROM payment_sessions WHERE status = 'completed'),
      named_rows AS (
        -- The entry each completed session names, one row per id: a row exported twice is one entry.
        SELECT * FROM ledger_entries
  WHERE ledger_entry_id IN (SELECT ledger_entry_id FROM completed)
  QUALIFY ledger_entry_id IS NULL OR row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1),
      reversals AS (
        SELECT reverses_ledger_entry_id AS ledger_entry_id,
               ARRAY_AGG(DISTINCT coalesce(ledger_entry_id, 'ledger_entries:' || __file || ':' || CAST(__line AS STRING)) ORDER BY coalesce(ledger_entry_id, 'ledger_entries:' || __file || ':' || CAST(__line AS STRING))) AS reversed_by
        FROM ledger_entries
        WHERE entry_type = 'reversal' AND reverses_ledger_entry_id IN (SELECT ledger_entry_id FROM completed)
        GROUP BY reverses_ledger_entry_id),
      named AS (
        -- Effective or not, matched row by row.
        SELECT n.*, e.__line IS NOT NULL AS effective, r.reversed_by
        FROM named_rows n
        LEFT JOIN (SELECT __file, __line FROM effective_ledger_entries
                   WHERE ledger_entry_id IN (SELECT ledger_entry_id FROM completed)) e
          ON e.__file = n.__file AND e.__line = n.__line
        LEFT JOIN reversals r ON r.ledger_entry_id = n.ledger_entry_id),
      checked AS (
        SELECT p.*, n.ledger_entry_id IS NOT NULL AS entry_found, n.entry_type, n.payment_session_id AS entry_session_id,
               n.amount_minor AS entry_amount_minor, n.currency AS entry_currency, n.reversed_by,
               CASE WHEN n.ledger_entry_id IS NOT NULL THEN ARRAY(SELECT x FROM UNNEST([CASE WHEN n.entry_type IS NULL THEN 'the entry has no entry_type, so it is not a payment_credit'
                      WHEN n.entry_type <> 'payment_credit' THEN 'the entry is a ' || n.entry_type || ', not a payment_credit' END, CASE WHEN n.entry_type IS DISTINCT FROM 'reversal' AND NOT n.effective THEN 'the entry was reversed' END, CASE WHEN n.payment_session_id IS DISTINCT FROM p.payment_session_id
                      THEN 'the entry credits payment session ' || coalesce(n.payment_session_id, '(none)') END, CASE WHEN n.amount_minor IS NULL THEN 'the entry has no amount'
                      WHEN n.amount_minor IS DISTINCT FROM p.amount_minor THEN 'the entry amount differs from the session amount' END, CASE WHEN n.currency IS NULL THEN 'the entry has no currency'
                      WHEN n.currency IS DISTINCT FROM p.currency THEN 'the entry currency differs from the session currency' END]) AS x WITH OFFSET AS i WHERE x IS NOT NULL ORDER BY i)
               WHEN p.ledger_entry_id IS NULL THEN ['the session names no ledger entry']
               ELSE ['the named ledger entry does not exist'] END AS problems
        FROM completed p
        LEFT JOIN named n ON n.ledger_entry_id = p.ledger_entry_id),
      credit_rows AS (
        SELECT * FROM effective_ledger_entries
        WHERE entry_type = 'payment_credit' AND payment_session_id IN (SELECT payment_session_id FROM checked WHERE ARRAY_LENGTH(problems) > 0)),
      credits AS (
        SELECT payment_session_id,
               ARRAY_AGG(coalesce(ledger_entry_id, 'ledger_entries:' || __file || ':' || CAST(__line AS STRING)) ORDER BY created_at NULLS LAST, ledger_entry_id NULLS LAST, __file, __line LIMIT 20) AS ledger_entry_ids
        FROM (SELECT * FROM credit_rows
  WHERE true
  QUALIFY ledger_entry_id IS NULL OR row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1)
        GROUP BY payment_session_id)
      SELECT coalesce(p.payment_session_id, 'payment_sessions:' || p.__file || ':' || CAST(p.__line AS STRING)) AS entity_id, p.org_id, p.requested_by_user_id, p.payment_session_id, p.ledger_entry_id, p.amount_minor, p.currency, p.correlation_id, p.trace_id,
             JSON_OBJECT('problems', p.problems, 'amount_minor', p.amount_minor, 'currency', p.currency, 'completed_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', p.completed_at, 'UTC'), r'\.000000Z$', 'Z'), 'ledger_entry_id', p.ledger_entry_id, 'entry', CASE WHEN p.entry_found THEN JSON_OBJECT('entry_type', p.entry_type, 'payment_session_id', p.entry_session_id, 'amount_minor', p.entry_amount_minor, 'currency', p.entry_currency, 'reversed_by', p.reversed_by) END, 'effective_credits', coalesce(c.ledger_entry_ids, ARRAY<STRING>[])) AS detail
      FROM checked p
      LEFT JOIN credits c ON c.payment_session_id = p.payment_session_id
      WHERE ARRAY_LENGTH(p.problems) > 0