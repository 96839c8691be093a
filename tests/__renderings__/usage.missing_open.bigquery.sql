WITH metered AS (
        -- Allocations with open allocation usage; a row exported twice changes nothing here.
        SELECT DISTINCT allocation_id
        FROM usage_records
        WHERE usage_source = 'allocation' AND allocation_id IS NOT NULL AND end_time IS NULL),
      unmetered AS (
        SELECT a.* FROM allocations a
        LEFT JOIN metered m ON m.allocation_id = a.allocation_id
        WHERE a.status IN ('active', 'releasing', 'release_failed') AND m.allocation_id IS NULL),
      closed_usage AS (
        -- For the detail of the few allocations reported: each usage record counts once.
        SELECT allocation_id,
               count(DISTINCT coalesce(usage_record_id, 'usage_records:' || __file || ':' || CAST(__line AS STRING))) AS closed_rows,
               max(end_time) AS last_end_time
        FROM usage_records
        WHERE usage_source = 'allocation' AND end_time IS NOT NULL
          AND allocation_id IN (SELECT allocation_id FROM unmetered)
        GROUP BY allocation_id)
      SELECT coalesce(a.allocation_id, 'allocations:' || a.__file || ':' || CAST(a.__line AS STRING)) AS entity_id,
             a.org_id, a.project_id, a.requested_by_user_id, a.allocation_id, a.correlation_id, a.trace_id,
             JSON_OBJECT('allocation_status', a.status, 'activated_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', a.activated_at, 'UTC'), r'\.000000Z$', 'Z'), 'expected', 'an open allocation usage row', 'open_usage_rows', 0, 'closed_usage_rows', coalesce(u.closed_rows, 0), 'last_usage_end_time', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', u.last_end_time, 'UTC'), r'\.000000Z$', 'Z')) AS detail
      FROM unmetered a
      LEFT JOIN closed_usage u ON u.allocation_id = a.allocation_id