WITH repeated AS (
        -- Only keys with two or more effective entries need ranking and listing.
        SELECT payment_session_id
        FROM effective_ledger_entries
        WHERE entry_type = 'payment_credit' AND payment_session_id IS NOT NULL
        GROUP BY payment_session_id
        HAVING count(*) > 1),
      candidates AS (
        SELECT * FROM effective_ledger_entries
        WHERE entry_type = 'payment_credit' AND payment_session_id IN (SELECT payment_session_id FROM repeated)),
      entries_once AS (
        SELECT * FROM candidates
  WHERE true
  QUALIFY ledger_entry_id IS NULL OR row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1),
      ranked AS (
        SELECT *, row_number() OVER (PARTITION BY payment_session_id ORDER BY created_at NULLS LAST, ledger_entry_id NULLS LAST, __file, __line) AS seq
        FROM entries_once),
      per_currency AS (
        -- An entry without an amount makes its currency's totals unknown (null).
        SELECT payment_session_id, currency, LOGICAL_OR(seq = 1) AS kept,
               CASE WHEN count(amount_minor) = count(*) THEN coalesce(sum(amount_minor), 0) END AS total_minor,
               CASE WHEN count(IF(seq > 1, amount_minor, NULL)) = COUNTIF(seq > 1)
                    THEN coalesce(sum(IF(seq > 1, amount_minor, NULL)), 0) END AS duplicated_minor
        FROM ranked
        GROUP BY payment_session_id, currency),
      at_stake AS (
        SELECT payment_session_id,
               ARRAY_AGG(STRUCT(currency AS v) ORDER BY CASE WHEN duplicated_minor > 0 THEN 2 WHEN duplicated_minor IS NULL THEN 1 ELSE 0 END DESC,
                     duplicated_minor DESC, kept DESC, currency NULLS LAST LIMIT 1)[OFFSET(0)].v AS currency,
               ARRAY_AGG(STRUCT(total_minor AS v) ORDER BY CASE WHEN duplicated_minor > 0 THEN 2 WHEN duplicated_minor IS NULL THEN 1 ELSE 0 END DESC,
                     duplicated_minor DESC, kept DESC, currency NULLS LAST LIMIT 1)[OFFSET(0)].v AS effective_total_minor,
               ARRAY_AGG(STRUCT(duplicated_minor AS v) ORDER BY CASE WHEN duplicated_minor > 0 THEN 2 WHEN duplicated_minor IS NULL THEN 1 ELSE 0 END DESC,
                     duplicated_minor DESC, kept DESC, currency NULLS LAST LIMIT 1)[OFFSET(0)].v AS duplicated_minor
        FROM per_currency
        GROUP BY payment_session_id),
      duplicated AS (
        SELECT r.payment_session_id,
               count(*) AS effective_entries,
               any_value(s.currency) AS currency,
               any_value(s.effective_total_minor) AS effective_total_minor,
               any_value(s.duplicated_minor) AS duplicated_minor,
               any_value(IF(r.seq = 1, coalesce(r.ledger_entry_id, 'ledger_entries:' || r.__file || ':' || CAST(r.__line AS STRING)), NULL)) AS kept_entry_id,
               any_value(IF(r.seq = 1, r.org_id, NULL)) AS kept_org_id,
               any_value(IF(r.seq = 1, r.requested_by_user_id, NULL)) AS kept_user_id,
               any_value(IF(r.seq = 1, r.project_id, NULL)) AS kept_project_id,
               any_value(IF(r.seq = 1, r.correlation_id, NULL)) AS kept_correlation_id,
               any_value(IF(r.seq = 1, r.trace_id, NULL)) AS kept_trace_id,
               ARRAY_AGG(STRUCT(coalesce(r.ledger_entry_id, 'ledger_entries:' || r.__file || ':' || CAST(r.__line AS STRING)) AS `ledger_entry_id`, r.amount_minor AS `amount_minor`, r.currency AS `currency`, REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', r.created_at, 'UTC'), r'\.000000Z$', 'Z') AS `created_at`, r.idempotency_key AS `idempotency_key`) ORDER BY r.seq LIMIT 20) AS entries
        FROM ranked r
        JOIN at_stake s ON s.payment_session_id = r.payment_session_id
        GROUP BY r.payment_session_id
        HAVING count(*) > 1),
      sessions AS (
        SELECT * FROM payment_sessions
  WHERE payment_session_id IN (SELECT payment_session_id FROM duplicated)
  QUALIFY payment_session_id IS NULL OR row_number() OVER (PARTITION BY payment_session_id ORDER BY __file, __line) = 1)
      SELECT d.payment_session_id AS entity_id,
             coalesce(p.org_id, d.kept_org_id) AS org_id,
             coalesce(p.requested_by_user_id, d.kept_user_id) AS requested_by_user_id,
             d.payment_session_id,
             d.duplicated_minor AS amount_minor, CASE WHEN d.duplicated_minor IS NOT NULL THEN d.currency END AS currency,
             coalesce(p.correlation_id, d.kept_correlation_id) AS correlation_id,
             coalesce(p.trace_id, d.kept_trace_id) AS trace_id,
             JSON_OBJECT('effective_entries', d.effective_entries, 'kept_entry_id', d.kept_entry_id, 'effective_total_minor', d.effective_total_minor, 'duplicated_minor', d.duplicated_minor, 'currency', d.currency, 'entries', d.entries) AS detail
      FROM duplicated d
      LEFT JOIN sessions p USING (payment_session_id)