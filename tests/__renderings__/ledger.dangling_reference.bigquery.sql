WITH broken AS (
        SELECT l.__file, l.__line, 0 AS ord,
               STRUCT('usage_record_id' AS `column`, l.usage_record_id AS `value`, 'usage_records' AS `missing_from`) AS ref
        FROM (SELECT l.* FROM ledger_entries l
   WHERE NOT EXISTS (SELECT 1 FROM usage_records x WHERE x.usage_record_id = l.usage_record_id)) l
        WHERE l.usage_record_id IS NOT NULL
        UNION ALL
        SELECT l.__file, l.__line, 1 AS ord,
               STRUCT('payment_session_id' AS `column`, l.payment_session_id AS `value`, 'payment_sessions' AS `missing_from`) AS ref
        FROM (SELECT l.* FROM ledger_entries l
   WHERE NOT EXISTS (SELECT 1 FROM payment_sessions x WHERE x.payment_session_id = l.payment_session_id)) l
        WHERE l.payment_session_id IS NOT NULL
        UNION ALL
        SELECT l.__file, l.__line, 2 AS ord,
               STRUCT('reverses_ledger_entry_id' AS `column`, l.reverses_ledger_entry_id AS `value`, 'ledger_entries' AS `missing_from`) AS ref
        FROM (SELECT l.* FROM ledger_entries l
   WHERE NOT EXISTS (SELECT 1 FROM ledger_entries x WHERE x.ledger_entry_id = l.reverses_ledger_entry_id)) l
        WHERE l.reverses_ledger_entry_id IS NOT NULL),
      refs AS (
        SELECT __file, __line, ARRAY_AGG(ref ORDER BY ord) AS dangling FROM broken GROUP BY __file, __line)
      SELECT coalesce(l.ledger_entry_id, 'ledger_entries:' || l.__file || ':' || CAST(l.__line AS STRING)) AS entity_id, l.org_id, l.project_id, l.requested_by_user_id, l.ledger_entry_id, l.usage_record_id, l.payment_session_id, l.correlation_id, l.trace_id,
             l.amount_minor, l.currency,
             JSON_OBJECT('entry_type', l.entry_type, 'dangling', f.dangling) AS detail
      FROM refs f
      JOIN ledger_entries l ON l.__file = f.__file AND l.__line = f.__line