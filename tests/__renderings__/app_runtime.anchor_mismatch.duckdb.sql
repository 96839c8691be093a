WITH instances AS (
  SELECT *, coalesce(app_instance_id, 'app_instances:' || __file || ':' || __line) AS entity_id
  FROM (SELECT * FROM app_instances
  QUALIFY app_instance_id IS NULL OR row_number() OVER (PARTITION BY app_instance_id ORDER BY __file, __line) = 1)),
compared AS (
  SELECT u.*, coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || u.__line) AS entity_id, i.app_instance_id IS NOT NULL AS instance_found,
    CASE WHEN i.app_instance_id IS NULL THEN [] ELSE list_filter([CASE WHEN u."org_id" IS DISTINCT FROM i."org_id" THEN {'field': 'org_id', 'usage': u."org_id", 'instance': i."org_id"} END, CASE WHEN u."project_id" IS DISTINCT FROM i."project_id" THEN {'field': 'project_id', 'usage': u."project_id", 'instance': i."project_id"} END, CASE WHEN u."operating_mode" IS DISTINCT FROM i."operating_mode" THEN {'field': 'operating_mode', 'usage': u."operating_mode", 'instance': i."operating_mode"} END, CASE WHEN u."control_plane_scope" IS DISTINCT FROM i."control_plane_scope" THEN {'field': 'control_plane_scope', 'usage': u."control_plane_scope", 'instance': i."control_plane_scope"} END, CASE WHEN u."runtime_backend" IS DISTINCT FROM i."runtime_backend" THEN {'field': 'runtime_backend', 'usage': u."runtime_backend", 'instance': i."runtime_backend"} END], x -> x IS NOT NULL) END AS mismatches
  FROM usage_records u
  LEFT JOIN instances i ON i.app_instance_id = u.app_instance_id
  WHERE u.usage_source = 'app_runtime' AND u.app_instance_id IS NOT NULL)
SELECT u.entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id,
  u.usage_record_id, u.usage_source, u.accrued_cost_minor AS amount_minor, u.currency,
  u.correlation_id, u.trace_id,
  json_object('app_instance_id', u.app_instance_id, 'instance_found', u.instance_found, 'mismatched_fields', to_json(list_transform(u.mismatches, m -> m.field)), 'mismatches', to_json(u.mismatches)) AS detail
FROM compared u
  WHERE NOT u.instance_found OR len(u.mismatches) > 0
  QUALIFY row_number() OVER (PARTITION BY coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || u.__line) ORDER BY u.__file, u.__line) = 1