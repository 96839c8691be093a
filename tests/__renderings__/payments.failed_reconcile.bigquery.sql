WITH credit_rows AS (
        SELECT * FROM effective_ledger_entries
        WHERE entry_type = 'payment_credit' AND payment_session_id IN (SELECT payment_session_id FROM payment_sessions WHERE status = 'failed_reconcile')),
      credits AS (
        SELECT payment_session_id,
               ARRAY_AGG(coalesce(ledger_entry_id, 'ledger_entries:' || __file || ':' || CAST(__line AS STRING)) ORDER BY created_at NULLS LAST, ledger_entry_id NULLS LAST, __file, __line LIMIT 20) AS ledger_entry_ids
        FROM (SELECT * FROM credit_rows
  WHERE true
  QUALIFY ledger_entry_id IS NULL OR row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1)
        GROUP BY payment_session_id)
      SELECT coalesce(p.payment_session_id, 'payment_sessions:' || p.__file || ':' || CAST(p.__line AS STRING)) AS entity_id, p.org_id, p.requested_by_user_id, p.payment_session_id, p.ledger_entry_id, p.amount_minor, p.currency, p.correlation_id, p.trace_id,
             JSON_OBJECT('status', p.status, 'provider', p.provider, 'provider_session_id', p.provider_session_id, 'amount_minor', p.amount_minor, 'currency', p.currency, 'created_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', p.created_at, 'UTC'), r'\.000000Z$', 'Z'), 'completed_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', p.completed_at, 'UTC'), r'\.000000Z$', 'Z'), 'ledger_entry_id', p.ledger_entry_id, 'effective_credits', coalesce(c.ledger_entry_ids, ARRAY<STRING>[])) AS detail
      FROM payment_sessions p
      LEFT JOIN credits c ON c.payment_session_id = p.payment_session_id
      WHERE p.status = 'failed_reconcile'