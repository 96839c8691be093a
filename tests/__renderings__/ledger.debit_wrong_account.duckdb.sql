WITH suspect_rows AS (
        -- A plain join finds the few debits that differ from a row of their usage record; it
        -- carries only where the two rows are, which halved its cost on 10M rows ...
        SELECT l.__file AS entry_file, l.__line AS entry_line, u.usage_record_id,
               u.__file AS owner_file, u.__line AS owner_line
        FROM effective_ledger_entries l
        JOIN usage_records u ON u.usage_record_id = l.usage_record_id
        WHERE l.entry_type = 'usage_debit'
          AND (l.org_id IS DISTINCT FROM u.org_id OR l.requested_by_user_id IS DISTINCT FROM u.requested_by_user_id)),
      owners AS (
        -- ... and the record's first row in the export says whose usage it is, even if it is exported twice.
        SELECT * FROM usage_records
  WHERE usage_record_id IN (SELECT usage_record_id FROM suspect_rows)
  QUALIFY usage_record_id IS NULL OR row_number() OVER (PARTITION BY usage_record_id ORDER BY __file, __line) = 1),
      suspects AS (
        SELECT l.*, o.org_id AS owner_org_id, o.requested_by_user_id AS owner_user_id,
               o.allocation_id AS owner_allocation_id, o.app_instance_id AS owner_app_instance_id,
               o.usage_source AS owner_usage_source
        FROM suspect_rows k
        JOIN owners o ON o.__file = k.owner_file AND o.__line = k.owner_line
        JOIN ledger_entries l ON l.__file = k.entry_file AND l.__line = k.entry_line)
      SELECT coalesce(l.ledger_entry_id, 'ledger_entries:' || l.__file || ':' || l.__line) AS entity_id, l.org_id, l.project_id, l.requested_by_user_id, l.ledger_entry_id, l.usage_record_id, l.payment_session_id, l.correlation_id, l.trace_id,
             l.owner_allocation_id AS allocation_id, l.owner_app_instance_id AS app_instance_id,
             l.owner_usage_source AS usage_source,
             l.amount_minor, l.currency,
             json_object('expected', json_object('org_id', l.owner_org_id, 'requested_by_user_id', l.owner_user_id), 'actual', json_object('org_id', l.org_id, 'requested_by_user_id', l.requested_by_user_id), 'mismatched', list_filter([CASE WHEN l.org_id IS DISTINCT FROM l.owner_org_id THEN 'org_id' END, CASE WHEN l.requested_by_user_id IS DISTINCT FROM l.owner_user_id THEN 'requested_by_user_id' END], x -> x IS NOT NULL)) AS detail
      FROM suspects l