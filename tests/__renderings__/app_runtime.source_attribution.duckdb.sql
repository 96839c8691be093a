WITH attributed AS (
  SELECT u.*, coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || u.__line) AS entity_id,
    list_filter([CASE WHEN u.usage_source = 'app_runtime' AND u.app_instance_id IS NULL
           THEN 'app_runtime usage without app_instance_id' END, CASE WHEN u.usage_source = 'allocation' AND u.app_instance_id IS NOT NULL
           THEN 'allocation usage with an app_instance_id' END, CASE WHEN u.usage_source = 'allocation' AND u.allocation_id IS NULL
           THEN 'allocation usage without allocation_id' END], x -> x IS NOT NULL) AS problems
  FROM usage_records u)
SELECT u.entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id,
  u.usage_record_id, u.usage_source, u.accrued_cost_minor AS amount_minor, u.currency,
  u.correlation_id, u.trace_id,
  json_object('usage_source', u.usage_source, 'allocation_id', u.allocation_id, 'app_instance_id', u.app_instance_id, 'problems', to_json(u.problems)) AS detail
FROM attributed u
  WHERE len(u.problems) > 0
  QUALIFY row_number() OVER (PARTITION BY coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || u.__line) ORDER BY u.__file, u.__line) = 1