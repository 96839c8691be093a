WITH allocations_once AS (SELECT * FROM allocations
  WHERE allocation_id IS NOT NULL
  QUALIFY allocation_id IS NULL OR row_number() OVER (PARTITION BY allocation_id ORDER BY __file, __line) = 1),
      windows AS (
        SELECT u.*, a.activated_at, a.released_at, a.status AS allocation_status,
               s.allocation_window_tolerance_minutes AS tolerance_minutes,
               u.start_time < TIMESTAMP_SUB(a.activated_at, INTERVAL s.allocation_window_tolerance_minutes MINUTE) AS starts_early,
               u.end_time > TIMESTAMP_ADD(a.released_at, INTERVAL s.allocation_window_tolerance_minutes MINUTE) AS ends_late
        FROM usage_records u
        JOIN allocations_once a ON a.allocation_id = u.allocation_id
        CROSS JOIN recon_settings s
        WHERE u.usage_source = 'allocation')
      SELECT coalesce(w.usage_record_id, 'usage_records:' || w.__file || ':' || CAST(w.__line AS STRING)) AS entity_id, w.org_id, w.project_id, w.requested_by_user_id, w.allocation_id, w.app_instance_id, w.usage_record_id, w.usage_source, w.correlation_id, w.trace_id,
             JSON_OBJECT('problems', ARRAY(SELECT x FROM UNNEST([CASE WHEN w.starts_early THEN 'starts before activated_at' END, CASE WHEN w.ends_late THEN 'ends after released_at' END]) AS x WITH OFFSET AS i WHERE x IS NOT NULL ORDER BY i), 'start_time', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', w.start_time, 'UTC'), r'\.000000Z$', 'Z'), 'end_time', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', w.end_time, 'UTC'), r'\.000000Z$', 'Z'), 'activated_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', w.activated_at, 'UTC'), r'\.000000Z$', 'Z'), 'released_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', w.released_at, 'UTC'), r'\.000000Z$', 'Z'), 'minutes_before_activation', CASE WHEN w.starts_early THEN round(TIMESTAMP_DIFF(w.activated_at, w.start_time, MICROSECOND) / 1000000 / 60, 2) END, 'minutes_after_release', CASE WHEN w.ends_late THEN round(TIMESTAMP_DIFF(w.end_time, w.released_at, MICROSECOND) / 1000000 / 60, 2) END, 'tolerance_minutes', w.tolerance_minutes, 'allocation_status', w.allocation_status) AS detail
      FROM windows w
      WHERE w.starts_early OR w.ends_late