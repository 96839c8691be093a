WITH instances AS (
  SELECT *, coalesce(app_instance_id, 'app_instances:' || __file || ':' || CAST(__line AS STRING)) AS entity_id
  FROM (SELECT * FROM app_instances
  WHERE true
  QUALIFY app_instance_id IS NULL OR row_number() OVER (PARTITION BY app_instance_id ORDER BY __file, __line) = 1))
SELECT coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || CAST(u.__line AS STRING)) AS entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id,
  u.usage_record_id, u.usage_source, u.accrued_cost_minor AS amount_minor, u.currency,
  u.correlation_id, u.trace_id,
  JSON_OBJECT('app_instance_id', u.app_instance_id, 'instance_found', i.app_instance_id IS NOT NULL, 'instance_status', i.status, 'instance_stopped_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', i.stopped_at, 'UTC'), r'\.000000Z$', 'Z'), 'start_time', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', u.start_time, 'UTC'), r'\.000000Z$', 'Z'), 'last_billed_at', REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', u.last_billed_at, 'UTC'), r'\.000000Z$', 'Z')) AS detail
FROM usage_records u
LEFT JOIN instances i ON i.app_instance_id = u.app_instance_id
  WHERE u.usage_source = 'app_runtime' AND u.end_time IS NULL AND u.app_instance_id IS NOT NULL
  AND NOT coalesce(i.status IN ('running', 'stopping'), false)
  QUALIFY row_number() OVER (PARTITION BY coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || CAST(u.__line AS STRING)) ORDER BY u.__file, u.__line) = 1