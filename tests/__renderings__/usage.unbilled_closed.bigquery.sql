WITH billed AS (
        SELECT DISTINCT usage_record_id
        FROM effective_ledger_entries
        WHERE entry_type = 'usage_debit' AND usage_record_id IS NOT NULL),
      unbilled AS (
        SELECT u.* FROM usage_records u
        LEFT JOIN billed b ON b.usage_record_id = u.usage_record_id
        WHERE u.end_time IS NOT NULL AND u.accrued_cost_minor > 0 AND b.usage_record_id IS NULL),
      reversed AS (
        -- A usage debit that is not effective was reversed, so every debit of an unbilled record was.
        SELECT usage_record_id, ARRAY_AGG(DISTINCT ledger_entry_id ORDER BY ledger_entry_id LIMIT 20) AS ledger_entry_ids
        FROM ledger_entries
        WHERE entry_type = 'usage_debit' AND ledger_entry_id IS NOT NULL
          AND usage_record_id IN (SELECT usage_record_id FROM unbilled)
        GROUP BY usage_record_id)
      SELECT coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || CAST(u.__line AS STRING)) AS entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id, u.usage_record_id, u.usage_source, u.correlation_id, u.trace_id,
             u.accrued_cost_minor AS amount_minor, u.currency,
             JSON_OBJECT('expected', 'an effective usage_debit', 'accrued_cost_minor', u.accrued_cost_minor, 'currency', u.currency, 'start_time', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', u.start_time, 'UTC'), r'\.000000Z$', 'Z'), 'end_time', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', u.end_time, 'UTC'), r'\.000000Z$', 'Z'), 'reversed_debits', coalesce(r.ledger_entry_ids, ARRAY<STRING>[])) AS detail
      FROM unbilled u
      LEFT JOIN reversed r ON r.usage_record_id = u.usage_record_id