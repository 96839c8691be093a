SELECT `allocation_id` AS `entity_id`, JSON_OBJECT('table', 'allocations', 'count', count(*), 'locations', ARRAY_AGG(__file || ':' || CAST(__line AS STRING) ORDER BY __file, __line LIMIT 20)) AS `detail`
      FROM `allocations`
      WHERE `allocation_id` IN (SELECT `allocation_id` FROM `allocations` WHERE `allocation_id` IS NOT NULL GROUP BY `allocation_id` HAVING count(*) > 1)
      GROUP BY `allocation_id`
UNION ALL
SELECT `app_instance_id` AS `entity_id`, JSON_OBJECT('table', 'app_instances', 'count', count(*), 'locations', ARRAY_AGG(__file || ':' || CAST(__line AS STRING) ORDER BY __file, __line LIMIT 20)) AS `detail`
      FROM `app_instances`
      WHERE `app_instance_id` IN (SELECT `app_instance_id` FROM `app_instances` WHERE `app_instance_id` IS NOT NULL GROUP BY `app_instance_id` HAVING count(*) > 1)
      GROUP BY `app_instance_id`
UNION ALL
SELECT `usage_record_id` AS `entity_id`, JSON_OBJECT('table', 'usage_records', 'count', count(*), 'locations', ARRAY_AGG(__file || ':' || CAST(__line AS STRING) ORDER BY __file, __line LIMIT 20)) AS `detail`
      FROM `usage_records`
      WHERE `usage_record_id` IN (SELECT `usage_record_id` FROM `usage_records` WHERE `usage_record_id` IS NOT NULL GROUP BY `usage_record_id` HAVING count(*) > 1)
      GROUP BY `usage_record_id`
UNION ALL
SELECT `ledger_entry_id` AS `entity_id`, JSON_OBJECT('table', 'ledger_entries', 'count', count(*), 'locations', ARRAY_AGG(__file || ':' || CAST(__line AS STRING) ORDER BY __file, __line LIMIT 20)) AS `detail`
      FROM `ledger_entries`
      WHERE `ledger_entry_id` IN (SELECT `ledger_entry_id` FROM `ledger_entries` WHERE `ledger_entry_id` IS NOT NULL GROUP BY `ledger_entry_id` HAVING count(*) > 1)
      GROUP BY `ledger_entry_id`
UNION ALL
SELECT `payment_session_id` AS `entity_id`, JSON_OBJECT('table', 'payment_sessions', 'count', count(*), 'locations', ARRAY_AGG(__file || ':' || CAST(__line AS STRING) ORDER BY __file, __line LIMIT 20)) AS `detail`
      FROM `payment_sessions`
      WHERE `payment_session_id` IN (SELECT `payment_session_id` FROM `payment_sessions` WHERE `payment_session_id` IS NOT NULL GROUP BY `payment_session_id` HAVING count(*) > 1)
      GROUP BY `payment_session_id`
UNION ALL
SELECT `event_id` AS `entity_id`, JSON_OBJECT('table', 'events', 'count', count(*), 'locations', ARRAY_AGG(__file || ':' || CAST(__line AS STRING) ORDER BY __file, __line LIMIT 20)) AS `detail`
      FROM `events`
      WHERE `event_id` IN (SELECT `event_id` FROM `events` WHERE `event_id` IS NOT NULL GROUP BY `event_id` HAVING count(*) > 1)
      GROUP BY `event_id`