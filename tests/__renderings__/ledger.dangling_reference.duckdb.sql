WITH broken AS (
        SELECT l.__file, l.__line, 0 AS ord,
               {'column': 'usage_record_id', 'value': l.usage_record_id, 'missing_from': 'usage_records'} AS ref
        FROM ledger_entries l
   ANTI JOIN usage_records x ON x.usage_record_id = l.usage_record_id
        WHERE l.usage_record_id IS NOT NULL
        UNION ALL
        SELECT l.__file, l.__line, 1 AS ord,
               {'column': 'payment_session_id', 'value': l.payment_session_id, 'missing_from': 'payment_sessions'} AS ref
        FROM ledger_entries l
   ANTI JOIN payment_sessions x ON x.payment_session_id = l.payment_session_id
        WHERE l.payment_session_id IS NOT NULL
        UNION ALL
        SELECT l.__file, l.__line, 2 AS ord,
               {'column': 'reverses_ledger_entry_id', 'value': l.reverses_ledger_entry_id, 'missing_from': 'ledger_entries'} AS ref
        FROM ledger_entries l
   ANTI JOIN ledger_entries x ON x.ledger_entry_id = l.reverses_ledger_entry_id
        WHERE l.reverses_ledger_entry_id IS NOT NULL),
      refs AS (
        SELECT __file, __line, list(ref ORDER BY ord) AS dangling FROM broken GROUP BY __file, __line)
      SELECT coalesce(l.ledger_entry_id, 'ledger_entries:' || l.__file || ':' || l.__line) AS entity_id, l.org_id, l.project_id, l.requested_by_user_id, l.ledger_entry_id, l.usage_record_id, l.payment_session_id, l.correlation_id, l.trace_id,
             l.amount_minor, l.currency,
             json_object('entry_type', l.entry_type, 'dangling', f.dangling) AS detail
      FROM refs f
      JOIN ledger_entries l ON l.__file = f.__file AND l.__line = f.__line