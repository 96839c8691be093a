SELECT coalesce(l.ledger_entry_id, 'ledger_entries:' || l.__file || ':' || l.__line) AS entity_id, l.org_id, l.project_id, l.requested_by_user_id, l.ledger_entry_id, l.usage_record_id, l.payment_session_id, l.correlation_id, l.trace_id,
             l.amount_minor, l.currency,
             json_object('entry_type', l.entry_type, 'missing', list_filter([CASE WHEN nullif(trim(l.actor), '') IS NULL THEN 'actor' END, CASE WHEN nullif(trim(l.correlation_id), '') IS NULL THEN 'correlation_id' END], x -> x IS NOT NULL), 'actor', l.actor, 'reverses_ledger_entry_id', l.reverses_ledger_entry_id, 'created_at', regexp_replace(strftime(l.created_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z')) AS detail
      FROM ledger_entries l
      WHERE l.entry_type IN ('adjustment_debit', 'adjustment_credit', 'reversal')
        AND (nullif(trim(l.actor), '') IS NULL OR nullif(trim(l.correlation_id), '') IS NULL)