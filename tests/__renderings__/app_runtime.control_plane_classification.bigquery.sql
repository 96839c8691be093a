WITH classified AS (
  SELECT u.*, coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || CAST(u.__line AS STRING)) AS entity_id,
    coalesce(lower(u.component) IN (SELECT lower(name) FROM recon_control_plane_components), false) AS named_control_plane
  FROM usage_records u
  WHERE u.usage_source = 'app_runtime')
SELECT u.entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id,
  u.usage_record_id, u.usage_source, u.accrued_cost_minor AS amount_minor, u.currency,
  u.correlation_id, u.trace_id,
  JSON_OBJECT('component', u.component, 'control_plane_component', u.control_plane_component, 'expected_control_plane_component', u.named_control_plane, 'problem', CASE
                WHEN u.control_plane_component IS NULL THEN 'control_plane_component is not set'
                WHEN u.named_control_plane THEN 'a control-plane component flagged as not control plane'
                WHEN u.component IS NULL THEN 'a row without a component flagged as control plane'
                ELSE 'a component that is not control plane flagged as control plane' END) AS detail
FROM classified u
  WHERE u.control_plane_component IS DISTINCT FROM u.named_control_plane
  QUALIFY row_number() OVER (PARTITION BY coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || CAST(u.__line AS STRING)) ORDER BY u.__file, u.__line) = 1