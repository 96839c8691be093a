WITH allocations_once AS (SELECT * FROM allocations
  WHERE allocation_id IS NOT NULL
  QUALIFY allocation_id IS NULL OR row_number() OVER (PARTITION BY allocation_id ORDER BY __file, __line) = 1),
      windows AS (
        SELECT u.*, a.activated_at, a.released_at, a.status AS allocation_status,
               s.allocation_window_tolerance_minutes AS tolerance_minutes,
               u.start_time < a.activated_at - to_minutes(s.allocation_window_tolerance_minutes) AS starts_early,
               u.end_time > a.released_at + to_minutes(s.allocation_window_tolerance_minutes) AS ends_late
        FROM usage_records u
        JOIN allocations_once a ON a.allocation_id = u.allocation_id
        CROSS JOIN recon_settings s
        WHERE u.usage_source = 'allocation')
      SELECT coalesce(w.usage_record_id, 'usage_records:' || w.__file || ':' || w.__line) AS entity_id, w.org_id, w.project_id, w.requested_by_user_id, w.allocation_id, w.app_instance_id, w.usage_record_id, w.usage_source, w.correlation_id, w.trace_id,
             json_object('problems', list_filter([CASE WHEN w.starts_early THEN 'starts before activated_at' END, CASE WHEN w.ends_late THEN 'ends after released_at' END], x -> x IS NOT NULL), 'start_time', regexp_replace(strftime(w.start_time, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'end_time', regexp_replace(strftime(w.end_time, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'activated_at', regexp_replace(strftime(w.activated_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'released_at', regexp_replace(strftime(w.released_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'minutes_before_activation', CASE WHEN w.starts_early THEN round(epoch(w.activated_at - w.start_time) / 60, 2) END, 'minutes_after_release', CASE WHEN w.ends_late THEN round(epoch(w.end_time - w.released_at) / 60, 2) END, 'tolerance_minutes', w.tolerance_minutes, 'allocation_status', w.allocation_status) AS detail
      FROM windows w
      WHERE w.starts_early OR w.ends_late