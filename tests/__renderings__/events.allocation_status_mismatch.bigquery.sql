WITH provisioning_statuses AS (
  SELECT 'provisioning.active' AS event_type, 'active' AS implied_status, 1 AS stage
  UNION ALL SELECT 'provisioning.releasing' AS event_type, 'releasing' AS implied_status, 2 AS stage
  UNION ALL SELECT 'provisioning.release_failed' AS event_type, 'release_failed' AS implied_status, 3 AS stage
  UNION ALL SELECT 'provisioning.releasing.completed' AS event_type, 'released' AS implied_status, 4 AS stage),
allocations_by_key AS (
  SELECT * FROM allocations
  WHERE allocation_id IS NOT NULL
  QUALIFY allocation_id IS NULL OR row_number() OVER (PARTITION BY allocation_id ORDER BY __file, __line) = 1),
latest_event AS (
  -- The latest provisioning.* event of any type; only afterwards is it asked what status it implies.
  SELECT e.event_id, e.event_type, e.occurred_at, e.allocation_id, p.implied_status
  FROM events e
  LEFT JOIN provisioning_statuses p ON p.event_type = e.event_type
  WHERE e.allocation_id IS NOT NULL AND e.occurred_at IS NOT NULL AND starts_with(e.event_type, 'provisioning.')
  QUALIFY row_number() OVER (
    PARTITION BY e.allocation_id ORDER BY e.occurred_at DESC, p.stage DESC NULLS LAST, e.event_id DESC NULLS LAST) = 1)
SELECT coalesce(a.allocation_id, 'allocations:' || a.__file || ':' || CAST(a.__line AS STRING)) AS entity_id, a.org_id, a.project_id, a.requested_by_user_id, a.allocation_id,
  a.correlation_id, a.trace_id,
  JSON_OBJECT('status', a.status, 'implied_status', l.implied_status, 'latest_event_id', l.event_id, 'latest_event_type', l.event_type, 'latest_event_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', l.occurred_at, 'UTC'), r'\.000000Z$', 'Z')) AS detail
FROM latest_event l
JOIN allocations_by_key a ON a.allocation_id = l.allocation_id
WHERE l.implied_status IS NOT NULL AND a.status IS DISTINCT FROM l.implied_status