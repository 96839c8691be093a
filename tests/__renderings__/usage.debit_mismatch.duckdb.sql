WITH debit_rows AS (
        SELECT * FROM effective_ledger_entries
        WHERE entry_type = 'usage_debit' AND usage_record_id IS NOT NULL),
      totals AS (
        -- One pass over every debit, then one join with the usage it bills.
        SELECT usage_record_id, count(*) AS entries, min(currency) AS currency,
               count(amount_minor) = count(*) AS amounts_known, sum(amount_minor) AS debited
        FROM debit_rows
        GROUP BY usage_record_id),
      suspects AS (
        -- Closed rows whose only debit is not exactly their cost in their currency, and every closed row with
        -- several debits: those may repeat a ledger row, so they are recounted below, each entry once.
        SELECT u.* FROM usage_records u
        JOIN totals t ON t.usage_record_id = u.usage_record_id
        WHERE u.end_time IS NOT NULL
          AND (t.entries > 1 OR NOT t.amounts_known
               OR t.currency IS DISTINCT FROM u.currency OR t.debited IS DISTINCT FROM u.accrued_cost_minor)),
      suspect_debits AS (
        SELECT * FROM debit_rows
  WHERE usage_record_id IN (SELECT usage_record_id FROM suspects)
  QUALIFY ledger_entry_id IS NULL OR row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1),
      debits AS (
        SELECT usage_record_id, currency,
               CASE WHEN count(amount_minor) = count(*) THEN coalesce(sum(amount_minor), 0) END AS debited,
               list(coalesce(ledger_entry_id, 'ledger_entries:' || __file || ':' || __line) ORDER BY ledger_entry_id, __file, __line)[1:20] AS ledger_entry_ids
        FROM suspect_debits
        GROUP BY usage_record_id, currency),
      per_currency AS (
        -- Each usage row is judged on its own (a row exported twice is one entity, reported once): its own
        -- currency, expected to carry its cost, even when nothing was debited in it ...
        SELECT s.__file, s.__line, s.currency, true AS own_currency, s.accrued_cost_minor AS expected,
               CASE WHEN d.usage_record_id IS NULL THEN 0 ELSE d.debited END AS debited,
               coalesce(d.ledger_entry_ids, []::VARCHAR[]) AS ledger_entry_ids
        FROM suspects s
        LEFT JOIN debits d ON d.usage_record_id = s.usage_record_id AND d.currency IS NOT DISTINCT FROM s.currency
        UNION ALL
        -- ... and every other currency it was debited in, expected to carry nothing.
        SELECT s.__file, s.__line, d.currency, false, 0, d.debited, d.ledger_entry_ids
        FROM suspects s
        JOIN debits d ON d.usage_record_id = s.usage_record_id AND d.currency IS DISTINCT FROM s.currency),
      judged AS (
        SELECT __file, __line,
               bool_or(NOT own_currency OR debited IS NULL OR debited IS DISTINCT FROM expected) AS mismatched,
               first(abs(debited - expected) ORDER BY (own_currency AND (debited IS NULL OR debited IS DISTINCT FROM expected)) DESC,
                     abs(debited - expected) DESC NULLS LAST, currency NULLS LAST) AS at_stake,
               first(currency ORDER BY (own_currency AND (debited IS NULL OR debited IS DISTINCT FROM expected)) DESC,
                     abs(debited - expected) DESC NULLS LAST, currency NULLS LAST) AS at_stake_currency,
               -- one row of the group is the own currency's
               any_value(debited) FILTER (WHERE own_currency) AS debited_own,
               list({'currency': currency, 'expected_minor': expected, 'debited_minor': debited, 'ledger_entry_ids': ledger_entry_ids} ORDER BY NOT own_currency, currency NULLS LAST) AS by_currency
        FROM per_currency
        GROUP BY __file, __line)
      SELECT coalesce(s.usage_record_id, 'usage_records:' || s.__file || ':' || s.__line) AS entity_id, s.org_id, s.project_id, s.requested_by_user_id, s.allocation_id, s.app_instance_id, s.usage_record_id, s.usage_source, s.correlation_id, s.trace_id,
             j.at_stake AS amount_minor, CASE WHEN j.at_stake IS NOT NULL THEN j.at_stake_currency END AS currency,
             json_object('accrued_cost_minor', s.accrued_cost_minor, 'currency', s.currency, 'debited_minor', j.debited_own, 'difference_minor', j.debited_own - s.accrued_cost_minor, 'by_currency', j.by_currency) AS detail
      FROM suspects s
      JOIN judged j ON j.__file = s.__file AND j.__line = s.__line
      WHERE j.mismatched