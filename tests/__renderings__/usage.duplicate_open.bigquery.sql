WITH open_usage AS (
        SELECT *,
               CASE usage_source WHEN 'allocation' THEN allocation_id WHEN 'app_runtime' THEN app_instance_id END AS anchor_id,
               CASE usage_source WHEN 'app_runtime' THEN lower(component) END AS anchor_component
        FROM usage_records
        WHERE end_time IS NULL),
      suspects AS (
        -- Plain counts find the few resources with more than one open row ...
        SELECT usage_source, anchor_id, anchor_component
        FROM open_usage
        WHERE anchor_id IS NOT NULL
        GROUP BY usage_source, anchor_id, anchor_component
        HAVING count(*) > 1),
      suspect_rows AS (
        SELECT u.* FROM open_usage u
        JOIN suspects g ON g.usage_source = u.usage_source AND g.anchor_id = u.anchor_id
                       AND g.anchor_component IS NOT DISTINCT FROM u.anchor_component),
      metering AS (
        -- ... whose rows then count once per usage record: a row exported twice is one meter.
        SELECT * FROM suspect_rows
  WHERE true
  QUALIFY usage_record_id IS NULL OR row_number() OVER (PARTITION BY usage_record_id ORDER BY __file, __line) = 1),
      open_groups AS (
        SELECT usage_source, anchor_id, anchor_component, count(*) AS open_rows,
               ARRAY_AGG(STRUCT(usage_record_id AS `usage_record_id`, REGEXP_REPLACE(FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', start_time, 'UTC'), r'\.000000Z$', 'Z') AS `start_time`, accrued_cost_minor AS `accrued_cost_minor`, currency AS `currency`) ORDER BY start_time NULLS LAST, usage_record_id NULLS LAST, __file, __line LIMIT 20) AS group_rows
        FROM metering
        GROUP BY usage_source, anchor_id, anchor_component
        HAVING count(*) > 1)
      SELECT coalesce(u.usage_record_id, 'usage_records:' || u.__file || ':' || CAST(u.__line AS STRING)) AS entity_id, u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id, u.usage_record_id, u.usage_source, u.correlation_id, u.trace_id,
             JSON_OBJECT('metered_resource', CASE u.usage_source
                 WHEN 'allocation' THEN JSON_OBJECT('allocation_id', u.allocation_id)
                 ELSE JSON_OBJECT('app_instance_id', u.app_instance_id, 'component', u.component) END, 'open_rows', g.open_rows, 'group', g.group_rows) AS detail
      FROM metering u
      JOIN open_groups g ON g.usage_source = u.usage_source AND g.anchor_id = u.anchor_id
                   AND g.anchor_component IS NOT DISTINCT FROM u.anchor_component