WITH refs AS (
        SELECT l.*, list_filter([CASE WHEN l.usage_record_id IS NOT NULL AND u.usage_record_id IS NULL
                      THEN {'column': 'usage_record_id', 'value': l.usage_record_id, 'missing_from': 'usage_records'} END, CASE WHEN l.payment_session_id IS NOT NULL AND p.payment_session_id IS NULL
                      THEN {'column': 'payment_session_id', 'value': l.payment_session_id, 'missing_from': 'payment_sessions'} END, CASE WHEN l.reverses_ledger_entry_id IS NOT NULL AND r.ledger_entry_id IS NULL
                      THEN {'column': 'reverses_ledger_entry_id', 'value': l.reverses_ledger_entry_id, 'missing_from': 'ledger_entries'} END], x -> x IS NOT NULL) AS dangling
        FROM ledger_entries l
        LEFT JOIN (SELECT DISTINCT usage_record_id FROM usage_records) u ON u.usage_record_id = l.usage_record_id
        LEFT JOIN (SELECT DISTINCT payment_session_id FROM payment_sessions) p ON p.payment_session_id = l.payment_session_id
        LEFT JOIN (SELECT DISTINCT ledger_entry_id FROM ledger_entries) r ON r.ledger_entry_id = l.reverses_ledger_entry_id)
      SELECT coalesce(f.ledger_entry_id, 'ledger_entries:' || f.__file || ':' || f.__line) AS entity_id, f.org_id, f.project_id, f.requested_by_user_id, f.ledger_entry_id, f.usage_record_id, f.payment_session_id, f.correlation_id, f.trace_id,
             f.amount_minor, f.currency,
             json_object('entry_type', f.entry_type, 'dangling', f.dangling) AS detail
      FROM refs f
      WHERE len(f.dangling) > 0