WITH entries_once AS (
        SELECT * FROM effective_ledger_entries
  QUALIFY ledger_entry_id IS NULL OR row_number() OVER (PARTITION BY ledger_entry_id ORDER BY __file, __line) = 1),
      projected AS (
        SELECT b.org_id, b.requested_by_user_id, b.currency, b.as_of, b.balance_minor, b.__file, b.__line,
               coalesce(sum(l.amount_minor) FILTER (WHERE l.direction = 'credit'), 0) AS credits_minor,
               coalesce(sum(l.amount_minor) FILTER (WHERE l.direction = 'debit'), 0) AS debits_minor,
               count(l.__line) AS entries
        FROM balances b
        LEFT JOIN entries_once l
          ON l.org_id = b.org_id AND l.requested_by_user_id = b.requested_by_user_id
         AND l.currency = b.currency AND l.created_at <= b.as_of
        GROUP BY b.org_id, b.requested_by_user_id, b.currency, b.as_of, b.balance_minor, b.__file, b.__line),
      mismatched AS (
        SELECT *, credits_minor - debits_minor AS expected_minor,
               balance_minor - (credits_minor - debits_minor) AS difference_minor
        FROM projected
        WHERE balance_minor <> credits_minor - debits_minor),
      latest AS (
        SELECT *, count(*) OVER account AS mismatched_rows,
               row_number() OVER (account ORDER BY as_of DESC, __file DESC, __line DESC) AS recency
        FROM mismatched
        WINDOW account AS (PARTITION BY org_id, requested_by_user_id, currency))
      SELECT coalesce(org_id, '') || '|' || coalesce(requested_by_user_id, '') || '|' || coalesce(currency, '') AS entity_id,
             org_id, requested_by_user_id,
             abs(difference_minor) AS amount_minor, currency,
             json_object('as_of', regexp_replace(strftime(as_of, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'balance_minor', balance_minor, 'expected_minor', expected_minor, 'difference_minor', difference_minor, 'effective_credits_minor', credits_minor, 'effective_debits_minor', debits_minor, 'effective_entries', entries, 'mismatched_balance_rows', mismatched_rows) AS detail
      FROM latest
      WHERE recency = 1