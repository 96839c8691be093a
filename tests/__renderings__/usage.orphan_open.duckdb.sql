WITH allocations_once AS (SELECT * FROM allocations
  WHERE allocation_id IS NOT NULL
  QUALIFY allocation_id IS NULL OR row_number() OVER (PARTITION BY allocation_id ORDER BY __file, __line) = 1)
      SELECT coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || u.__line) AS entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id, u.usage_record_id, u.usage_source, u.correlation_id, u.trace_id,
             json_object('problem', CASE
                 WHEN u.allocation_id IS NULL THEN 'the usage row names no allocation'
                 WHEN a.allocation_id IS NULL THEN 'allocation not found'
                 ELSE 'allocation status is ' || coalesce(a.status, 'empty') || ', not billable' END, 'allocation_status', a.status, 'released_at', regexp_replace(strftime(a.released_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'billable_statuses', ['active', 'releasing', 'release_failed'], 'start_time', regexp_replace(strftime(u.start_time, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'last_billed_at', regexp_replace(strftime(u.last_billed_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'accrued_cost_minor', u.accrued_cost_minor, 'currency', u.currency) AS detail
      FROM usage_records u
      LEFT JOIN allocations_once a ON a.allocation_id = u.allocation_id
      WHERE u.usage_source = 'allocation' AND u.end_time IS NULL
        AND (a.allocation_id IS NULL OR a.status IS NULL OR a.status NOT IN ('active', 'releasing', 'release_failed'))