WITH instances AS (
  SELECT *, coalesce(app_instance_id, 'app_instances:' || __file || ':' || CAST(__line AS STRING)) AS entity_id
  FROM (SELECT * FROM app_instances
  WHERE true
  QUALIFY app_instance_id IS NULL OR row_number() OVER (PARTITION BY app_instance_id ORDER BY __file, __line) = 1)),
compared AS (
  SELECT u.*, coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || CAST(u.__line AS STRING)) AS entity_id, i.app_instance_id IS NOT NULL AS instance_found,
    CASE WHEN i.app_instance_id IS NULL THEN [] ELSE ARRAY(SELECT x FROM UNNEST([CASE WHEN u.`org_id` IS DISTINCT FROM i.`org_id` THEN STRUCT('org_id' AS `field`, u.`org_id` AS `usage`, i.`org_id` AS `instance`) END, CASE WHEN u.`project_id` IS DISTINCT FROM i.`project_id` THEN STRUCT('project_id' AS `field`, u.`project_id` AS `usage`, i.`project_id` AS `instance`) END, CASE WHEN u.`operating_mode` IS DISTINCT FROM i.`operating_mode` THEN STRUCT('operating_mode' AS `field`, u.`operating_mode` AS `usage`, i.`operating_mode` AS `instance`) END, CASE WHEN u.`control_plane_scope` IS DISTINCT FROM i.`control_plane_scope` THEN STRUCT('control_plane_scope' AS `field`, u.`control_plane_scope` AS `usage`, i.`control_plane_scope` AS `instance`) END, CASE WHEN u.`runtime_backend` IS DISTINCT FROM i.`runtime_backend` THEN STRUCT('runtime_backend' AS `field`, u.`runtime_backend` AS `usage`, i.`runtime_backend` AS `instance`) END]) AS x WITH OFFSET AS i WHERE x IS NOT NULL ORDER BY i) END AS mismatches
  FROM usage_records u
  LEFT JOIN instances i ON i.app_instance_id = u.app_instance_id
  WHERE u.usage_source = 'app_runtime' AND u.app_instance_id IS NOT NULL)
SELECT u.entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id,
  u.usage_record_id, u.usage_source, u.accrued_cost_minor AS amount_minor, u.currency,
  u.correlation_id, u.trace_id,
  JSON_OBJECT('app_instance_id', u.app_instance_id, 'instance_found', u.instance_found, 'mismatched_fields', to_json(ARRAY(SELECT m.field FROM UNNEST(u.mismatches) AS m WITH OFFSET AS i ORDER BY i)), 'mismatches', to_json(u.mismatches)) AS detail
FROM compared u
  WHERE NOT u.instance_found OR ARRAY_LENGTH(u.mismatches) > 0
  QUALIFY row_number() OVER (PARTITION BY coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || CAST(u.__line AS STRING)) ORDER BY u.__file, u.__line) = 1