WITH reused AS (
        -- Only keys on more than one effective row need the per-entry analysis below.
        SELECT idempotency_key
        FROM effective_ledger_entries
        WHERE idempotency_key IS NOT NULL
        GROUP BY idempotency_key
        HAVING count(*) > 1),
      entries AS (
        SELECT * FROM effective_ledger_entries
  WHERE idempotency_key IN (SELECT idempotency_key FROM reused)
  QUALIFY ledger_entry_id IS NULL OR row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1),
      keys AS (
        SELECT idempotency_key, count(*) AS uses,
               ARRAY_AGG(coalesce(ledger_entry_id, 'ledger_entries:' || __file || ':' || CAST(__line AS STRING)) ORDER BY created_at NULLS LAST, ledger_entry_id NULLS LAST, __file, __line LIMIT 20) AS key_entries
        FROM entries
        GROUP BY idempotency_key
        HAVING count(*) > 1),
      judged AS (
        SELECT e.*, k.uses, k.key_entries,
               first_value(coalesce(e.ledger_entry_id, 'ledger_entries:' || e.__file || ':' || CAST(e.__line AS STRING))) OVER key_order AS first_entry,
               row_number() OVER key_order > 1 AS repeats
        FROM entries e
        JOIN keys k ON k.idempotency_key = e.idempotency_key
        WINDOW key_order AS (PARTITION BY e.idempotency_key ORDER BY e.created_at NULLS LAST, e.ledger_entry_id NULLS LAST, e.__file, e.__line))
      SELECT coalesce(j.ledger_entry_id, 'ledger_entries:' || j.__file || ':' || CAST(j.__line AS STRING)) AS entity_id, j.org_id, j.project_id, j.requested_by_user_id, j.ledger_entry_id, j.usage_record_id, j.payment_session_id, j.correlation_id, j.trace_id,
             CASE WHEN j.repeats THEN j.amount_minor END AS amount_minor,
             CASE WHEN j.repeats THEN j.currency END AS currency,
             JSON_OBJECT('idempotency_key', j.idempotency_key, 'effective_uses', j.uses, 'ledger_entry_ids', j.key_entries, 'entry_type', j.entry_type, 'amount_minor', j.amount_minor, 'entry_currency', j.currency, 'role', CASE WHEN j.repeats THEN 'repeats effective entry ' || j.first_entry
                            ELSE 'first effective entry of the key' END) AS detail
      FROM judged j