WITH instances AS (
  SELECT *, coalesce(app_instance_id, 'app_instances:' || __file || ':' || __line) AS entity_id
  FROM (SELECT * FROM app_instances
  QUALIFY app_instance_id IS NULL OR row_number() OVER (PARTITION BY app_instance_id ORDER BY __file, __line) = 1)),
usage_rows AS (
  SELECT * FROM usage_records
  WHERE usage_source = 'app_runtime' AND app_instance_id IS NOT NULL),
metered AS (
  -- Plain counts say which instances have usage and open usage; a row exported twice changes neither ...
  SELECT app_instance_id, bool_or(end_time IS NULL) AS metering
  FROM usage_rows
  GROUP BY app_instance_id),
judged AS (
  SELECT i.*,
    list_filter([CASE WHEN i.started_at IS NOT NULL AND m.app_instance_id IS NULL
           THEN 'ran (started_at is set) but has no app_runtime usage row' END, CASE WHEN i.status IN ('running', 'stopping') AND NOT coalesce(m.metering, false)
           THEN 'is ' || i.status || ' (billable) but has no open app_runtime usage row' END], x -> x IS NOT NULL) AS problems
  FROM instances i
  LEFT JOIN metered m ON m.app_instance_id = i.app_instance_id),
counted AS (
  -- ... and the detail of the few instances reported counts each usage record once.
  SELECT app_instance_id,
    count(DISTINCT coalesce(usage_record_id, 'usage_records:' || __file || ':' || __line)) AS usage_rows,
    count(DISTINCT coalesce(usage_record_id, 'usage_records:' || __file || ':' || __line)) FILTER (WHERE end_time IS NULL) AS open_usage_rows
  FROM usage_rows
  WHERE app_instance_id IN (SELECT app_instance_id FROM judged WHERE len(problems) > 0)
  GROUP BY app_instance_id),
checked AS (
  SELECT j.*, coalesce(c.usage_rows, 0) AS usage_rows, coalesce(c.open_usage_rows, 0) AS open_usage_rows
  FROM judged j
  LEFT JOIN counted c ON c.app_instance_id = j.app_instance_id
  WHERE len(j.problems) > 0)
SELECT entity_id, org_id, project_id, app_instance_id, correlation_id, trace_id,
  json_object('status', status, 'started_at', regexp_replace(strftime(started_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'stopped_at', regexp_replace(strftime(stopped_at, '%Y-%m-%dT%H:%M:%S.%fZ'), '\.000000Z$', 'Z'), 'usage_rows', usage_rows, 'open_usage_rows', open_usage_rows, 'problems', to_json(problems)) AS detail
FROM checked
WHERE len(problems) > 0