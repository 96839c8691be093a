WITH provisioning_statuses(event_type, implied_status, stage) AS (VALUES
  ('provisioning.active', 'active', 1),
  ('provisioning.releasing', 'releasing', 2),
  ('provisioning.release_failed', 'release_failed', 3),
  ('provisioning.releasing.completed', 'released', 4)),
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
SELECT coalesce(a.allocation_id, 'allocations:' || a.__file || ':' || a.__line) AS entity_id, a.org_id, a.project_id, a.requested_by_user_id, a.allocation_id,
  a.correlation_id, a.trace_id,
  json_object('status', a.status, 'implied_status', l.implied_status, 'latest_event_id', l.event_id, 'latest_event_type', l.event_type, 'latest_event_at', regexp_replace(strftime(l.occurred_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z')) AS detail
FROM latest_event l
JOIN allocations_by_key a ON a.allocation_id = l.allocation_id
WHERE l.implied_status IS NOT NULL AND a.status IS DISTINCT FROM l.implied_status