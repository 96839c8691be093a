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
               count(DISTINCT coalesce(usage_record_id, 'usage_records:' || __file || ':' || __line)) AS closed_rows,
               max(end_time) AS last_end_time
        FROM usage_records
        WHERE usage_source = 'allocation' AND end_time IS NOT NULL
          AND allocation_id IN (SELECT allocation_id FROM unmetered)
        GROUP BY allocation_id)
      SELECT coalesce(a.allocation_id, 'allocations:' || a.__file || ':' || a.__line) AS entity_id,
             a.org_id, a.project_id, a.requested_by_user_id, a.allocation_id, a.correlation_id, a.trace_id,
             json_object('allocation_status', a.status, 'activated_at', regexp_replace(strftime(a.activated_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'expected', 'an open allocation usage row', 'open_usage_rows', 0, 'closed_usage_rows', coalesce(u.closed_rows, 0), 'last_usage_end_time', regexp_replace(strftime(u.last_end_time, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z')) AS detail
      FROM unmetered a
      LEFT JOIN closed_usage u ON u.allocation_id = a.allocation_id