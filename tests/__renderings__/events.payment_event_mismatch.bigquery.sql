WITH sessions AS (
  SELECT *, coalesce(payment_session_id, 'payment_sessions:' || __file || ':' || CAST(__line AS STRING)) AS session_entity
  FROM (SELECT * FROM payment_sessions
  WHERE true
  QUALIFY payment_session_id IS NULL OR row_number() OVER (PARTITION BY payment_session_id ORDER BY __file, __line) = 1)),
credits AS (
  -- Two equi-joins, not one join on an OR: an OR condition cannot be hashed and turns into a
  -- nested loop over sessions × ledger entries. Only completed sessions need a credit.
  -- A credit without an id still credits the session; the detail names it by its location.
  SELECT session_entity, min(credit_entity) AS credit_ledger_entry_id, min(credit_id) AS credit_id
  FROM (
    SELECT s.session_entity, e.ledger_entry_id AS credit_id,
           coalesce(e.ledger_entry_id, 'ledger_entries:' || e.__file || ':' || CAST(e.__line AS STRING)) AS credit_entity
    FROM sessions s JOIN effective_ledger_entries e ON e.payment_session_id = s.payment_session_id
    WHERE s.status = 'completed' AND e.entry_type = 'payment_credit'
    UNION ALL
    SELECT s.session_entity, e.ledger_entry_id, coalesce(e.ledger_entry_id, 'ledger_entries:' || e.__file || ':' || CAST(e.__line AS STRING))
    FROM sessions s JOIN effective_ledger_entries e ON e.ledger_entry_id = s.ledger_entry_id
    WHERE s.status = 'completed' AND e.entry_type = 'payment_credit')
  GROUP BY session_entity),
announced AS (
  SELECT payment_session_id, ARRAY_AGG(DISTINCT event_type ORDER BY event_type) AS event_types
  FROM events
  WHERE payment_session_id IS NOT NULL AND event_type IS NOT NULL
  GROUP BY payment_session_id),
expected AS (
  SELECT s.*, c.credit_ledger_entry_id, c.credit_id, coalesce(a.event_types, ARRAY<STRING>[]) AS event_types,
    CASE WHEN s.status = 'failed_reconcile' THEN 'payments.reconcile_failed'
         WHEN s.status = 'completed' AND c.credit_ledger_entry_id IS NOT NULL THEN 'payments.balance_credited'
    END AS expected_event
  FROM sessions s
  LEFT JOIN credits c ON c.session_entity = s.session_entity
  LEFT JOIN announced a ON a.payment_session_id = s.payment_session_id)
SELECT session_entity AS entity_id, org_id, requested_by_user_id, payment_session_id,
  coalesce(credit_id, ledger_entry_id) AS ledger_entry_id,
  amount_minor, currency, correlation_id, trace_id,
  JSON_OBJECT('status', status, 'missing_event', expected_event, 'credit_ledger_entry_id', credit_ledger_entry_id, 'events_seen', to_json(event_types)) AS detail
FROM expected
WHERE expected_event IS NOT NULL AND NOT (expected_event IN UNNEST(event_types))