WITH repeated AS (
        -- Only keys with two or more effective entries need ranking and listing.
        SELECT usage_record_id
        FROM effective_ledger_entries
        WHERE entry_type = 'usage_debit' AND usage_record_id IS NOT NULL
        GROUP BY usage_record_id
        HAVING count(*) > 1),
      candidates AS (
        SELECT * FROM effective_ledger_entries
        WHERE entry_type = 'usage_debit' AND usage_record_id IN (SELECT usage_record_id FROM repeated)),
      entries_once AS (
        SELECT * FROM candidates
  QUALIFY ledger_entry_id IS NULL OR row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1),
      ranked AS (
        SELECT *, row_number() OVER (PARTITION BY usage_record_id ORDER BY created_at, ledger_entry_id, __file, __line) AS seq
        FROM entries_once),
      per_currency AS (
        -- An entry without an amount makes its currency's totals unknown (null).
        SELECT usage_record_id, currency, bool_or(seq = 1) AS kept,
               CASE WHEN count(amount_minor) = count(*) THEN coalesce(sum(amount_minor), 0) END AS total_minor,
               CASE WHEN count(amount_minor) FILTER (WHERE seq > 1) = count(*) FILTER (WHERE seq > 1)
                    THEN coalesce(sum(amount_minor) FILTER (WHERE seq > 1), 0) END AS duplicated_minor
        FROM ranked
        GROUP BY usage_record_id, currency),
      at_stake AS (
        SELECT usage_record_id,
               first(currency ORDER BY CASE WHEN duplicated_minor > 0 THEN 2 WHEN duplicated_minor IS NULL THEN 1 ELSE 0 END DESC,
                     duplicated_minor DESC, kept DESC, currency NULLS LAST) AS currency,
               first(total_minor ORDER BY CASE WHEN duplicated_minor > 0 THEN 2 WHEN duplicated_minor IS NULL THEN 1 ELSE 0 END DESC,
                     duplicated_minor DESC, kept DESC, currency NULLS LAST) AS effective_total_minor,
               first(duplicated_minor ORDER BY CASE WHEN duplicated_minor > 0 THEN 2 WHEN duplicated_minor IS NULL THEN 1 ELSE 0 END DESC,
                     duplicated_minor DESC, kept DESC, currency NULLS LAST) AS duplicated_minor
        FROM per_currency
        GROUP BY usage_record_id),
      duplicated AS (
        SELECT r.usage_record_id,
               count(*) AS effective_entries,
               any_value(s.currency) AS currency,
               any_value(s.effective_total_minor) AS effective_total_minor,
               any_value(s.duplicated_minor) AS duplicated_minor,
               any_value(coalesce(r.ledger_entry_id, 'ledger_entries:' || r.__file || ':' || r.__line)) FILTER (WHERE r.seq = 1) AS kept_entry_id,
               any_value(r.org_id) FILTER (WHERE r.seq = 1) AS kept_org_id,
               any_value(r.requested_by_user_id) FILTER (WHERE r.seq = 1) AS kept_user_id,
               any_value(r.project_id) FILTER (WHERE r.seq = 1) AS kept_project_id,
               any_value(r.correlation_id) FILTER (WHERE r.seq = 1) AS kept_correlation_id,
               any_value(r.trace_id) FILTER (WHERE r.seq = 1) AS kept_trace_id,
               list({'ledger_entry_id': coalesce(r.ledger_entry_id, 'ledger_entries:' || r.__file || ':' || r.__line), 'amount_minor': r.amount_minor, 'currency': r.currency, 'created_at': regexp_replace(strftime(r.created_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'idempotency_key': r.idempotency_key} ORDER BY r.seq)[1:20] AS entries
        FROM ranked r
        JOIN at_stake s ON s.usage_record_id = r.usage_record_id
        GROUP BY r.usage_record_id
        HAVING count(*) > 1),
      owners AS (
        SELECT * FROM usage_records
  WHERE usage_record_id IN (SELECT usage_record_id FROM duplicated)
  QUALIFY usage_record_id IS NULL OR row_number() OVER (PARTITION BY usage_record_id ORDER BY __file, __line) = 1)
      SELECT d.usage_record_id AS entity_id,
             coalesce(u.org_id, d.kept_org_id) AS org_id,
             coalesce(u.project_id, d.kept_project_id) AS project_id,
             coalesce(u.requested_by_user_id, d.kept_user_id) AS requested_by_user_id,
             u.allocation_id, u.app_instance_id, d.usage_record_id, u.usage_source,
             d.duplicated_minor AS amount_minor, CASE WHEN d.duplicated_minor IS NOT NULL THEN d.currency END AS currency,
             coalesce(u.correlation_id, d.kept_correlation_id) AS correlation_id,
             coalesce(u.trace_id, d.kept_trace_id) AS trace_id,
             json_object('effective_entries', d.effective_entries, 'kept_entry_id', d.kept_entry_id, 'effective_total_minor', d.effective_total_minor, 'duplicated_minor', d.duplicated_minor, 'currency', d.currency, 'entries', d.entries) AS detail
      FROM duplicated d
      LEFT JOIN owners u USING (usage_record_id)