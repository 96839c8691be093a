WITH refs AS (
        SELECT l.*, ARRAY(SELECT x FROM UNNEST([CASE WHEN l.usage_record_id IS NOT NULL AND u.usage_record_id IS NULL
                      THEN STRUCT('usage_record_id' AS `column`, l.usage_record_id AS `value`, 'usage_records' AS `missing_from`) END, CASE WHEN l.payment_session_id IS NOT NULL AND p.payment_session_id IS NULL
                      THEN STRUCT('payment_session_id' AS `column`, l.payment_session_id AS `value`, 'payment_sessions' AS `missing_from`) END, CASE WHEN l.reverses_ledger_entry_id IS NOT NULL AND r.ledger_entry_id IS NULL
                      THEN STRUCT('reverses_ledger_entry_id' AS `column`, l.reverses_ledger_entry_id AS `value`, 'ledger_entries' AS `missing_from`) END]) AS x WITH OFFSET AS i WHERE x IS NOT NULL ORDER BY i) AS dangling
        FROM ledger_entries l
        LEFT JOIN (SELECT DISTINCT usage_record_id FROM usage_records) u ON u.usage_record_id = l.usage_record_id
        LEFT JOIN (SELECT DISTINCT payment_session_id FROM payment_sessions) p ON p.payment_session_id = l.payment_session_id
        LEFT JOIN (SELECT DISTINCT ledger_entry_id FROM ledger_entries) r ON r.ledger_entry_id = l.reverses_ledger_entry_id)
      SELECT coalesce(f.ledger_entry_id, 'ledger_entries:' || f.__file || ':' || CAST(f.__line AS STRING)) AS entity_id, f.org_id, f.project_id, f.requested_by_user_id, f.ledger_entry_id, f.usage_record_id, f.payment_session_id, f.correlation_id, f.trace_id,
             f.amount_minor, f.currency,
             JSON_OBJECT('entry_type', f.entry_type, 'dangling', f.dangling) AS detail
      FROM refs f
      WHERE ARRAY_LENGTH(f.dangling) > 0