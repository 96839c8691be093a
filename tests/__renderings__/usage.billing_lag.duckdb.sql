SELECT coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || u.__line) AS entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id, u.usage_record_id, u.usage_source, u.correlation_id, u.trace_id,
             json_object('billed_through', regexp_replace(strftime(coalesce(u.last_billed_at, u.start_time), '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'never_billed', u.last_billed_at IS NULL, 'as_of', regexp_replace(strftime(s.as_of, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'lag_minutes', round(epoch(s.as_of - coalesce(u.last_billed_at, u.start_time)) / 60, 2), 'threshold_minutes', s.billing_lag_minutes, 'accrued_cost_minor', u.accrued_cost_minor, 'currency', u.currency) AS detail
      FROM usage_records u
      CROSS JOIN recon_settings s
      WHERE u.end_time IS NULL
        AND coalesce(u.last_billed_at, u.start_time) < s.as_of - to_minutes(s.billing_lag_minutes)