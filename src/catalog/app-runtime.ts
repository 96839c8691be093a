import { BILLABLE_APP_STATUSES } from '../contract/tables.ts';
import { firstRowPerKey, rowEntityId, type Dialect } from '../dialect/dialect.ts';
import { dialectOf, type Invariant } from './types.ts';

const billableApp = (d: Dialect) => BILLABLE_APP_STATUSES.map(d.string).join(', ');

/**
 * A usage row's entity id: its key or, when the key is null, its source location (the id
 * `contract.invalid_value` gives the same row), so an id-less cost row is still reported.
 */
const usageEntity = (d: Dialect) => rowEntityId(d, 'usage_records', 'usage_record_id', 'u');

/**
 * One violation per entity even when a key is duplicated (`contract.duplicate_key` reports
 * that): the first of its rows in the export speaks for it.
 */
// Partitioned by the expression, not the `entity_id` alias: a joined table's own entity_id
// column would win the name lookup and silently merge different usage rows.
const firstPerEntity = (d: Dialect, where: string) =>
  d.qualify(where, `row_number() OVER (PARTITION BY ${usageEntity(d)} ORDER BY u.__file, u.__line) = 1`);

/** app_instances with one row per key, chosen like firstPerEntity, so a join never fans out. */
const instancesCte = (d: Dialect) => `instances AS (
  SELECT *, ${rowEntityId(d, 'app_instances', 'app_instance_id')} AS entity_id
  FROM (${firstRowPerKey(d, 'app_instances', 'app_instance_id')}))`;

/** The scope of a usage-row violation, with its accrued cost as the money at stake. */
const USAGE_SCOPE = `u.org_id, u.project_id, u.requested_by_user_id, u.allocation_id, u.app_instance_id,
  u.usage_record_id, u.usage_source, u.accrued_cost_minor AS amount_minor, u.currency,
  u.correlation_id, u.trace_id`;

/** What app_runtime usage copies from its instance (CONTRACT.md §1, usage_records). */
const ANCHOR_FIELDS = ['org_id', 'project_id', 'operating_mode', 'control_plane_scope', 'runtime_backend'] as const;

const anchorDiffs = (d: Dialect) =>
  ANCHOR_FIELDS.map((f) => {
    const c = d.ident(f);
    return `CASE WHEN u.${c} IS DISTINCT FROM i.${c} THEN ${d.struct([
      ['field', d.string(f)],
      ['usage', `u.${c}`],
      ['instance', `i.${c}`],
    ])} END`;
  });

const RUNBOOK = 'App-runtime billing drift runbook';

export const appRuntimeInvariants: readonly Invariant[] = [
  {
    id: 'app_runtime.source_attribution',
    family: 'app_runtime',
    title: 'Every usage row is attributed to the kind of resource it meters',
    severity: 'error',
    owner: { layer: 'attribution_mapping' },
    entity: 'usage_record',
    needs: ['usage_records'],
    runbook: `${RUNBOOK}: mixed usage listings must distinguish allocation from app_runtime usage; app_runtime rows carry an app_instance_id, allocation rows an allocation_id and no app_instance_id.`,
    explanation:
      'Usage is metered either for a GPU allocation or for an app runtime instance, and each row must say which one it ' +
      'belongs to. An app-runtime row without an instance, or an allocation row without an allocation (or pointing at an ' +
      'app instance as well), cannot be traced to what the customer actually ran: its cost, shown as the amount at stake, ' +
      'may be billed under the wrong product line or counted twice when usage is broken down by resource. An ' +
      'app-runtime row that also names the allocation it runs on is allowed.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH attributed AS (
  SELECT u.*, ${usageEntity(d)} AS entity_id,
    ${d.nonNullList([
      `CASE WHEN u.usage_source = 'app_runtime' AND u.app_instance_id IS NULL
           THEN 'app_runtime usage without app_instance_id' END`,
      `CASE WHEN u.usage_source = 'allocation' AND u.app_instance_id IS NOT NULL
           THEN 'allocation usage with an app_instance_id' END`,
      `CASE WHEN u.usage_source = 'allocation' AND u.allocation_id IS NULL
           THEN 'allocation usage without allocation_id' END`,
    ])} AS problems
  FROM usage_records u)
SELECT u.entity_id, ${USAGE_SCOPE},
  ${d.jsonObject([
    ['usage_source', 'u.usage_source'],
    ['allocation_id', 'u.allocation_id'],
    ['app_instance_id', 'u.app_instance_id'],
    ['problems', 'to_json(u.problems)'],
  ])} AS detail
FROM attributed u${firstPerEntity(d, `${d.listLength('u.problems')} > 0`)}`;
    },
  },
  {
    id: 'app_runtime.anchor_mismatch',
    family: 'app_runtime',
    title: 'App-runtime usage matches the instance it meters',
    severity: 'error',
    owner: {
      layer: 'attribution_mapping',
      refine: [
        {
          when: `json_extract(detail, '$.instance_found') = 'false'::JSON`,
          layer: 'metering_emitter',
          why: 'usage was emitted for an app instance the control plane does not know: emission, not the copy of its fields',
        },
      ],
    },
    entity: 'usage_record',
    needs: ['usage_records', 'app_instances'],
    runbook: `${RUNBOOK}: control-plane cost rows must be explainable by operating_mode, control_plane_scope and runtime_backend; each app_runtime row's org, project and those fields must be the instance's.`,
    explanation:
      'Each app-runtime usage row copies the tenant (org and project) and the runtime attributes (operating mode, ' +
      'control-plane scope, runtime backend) from the app instance it meters. When a copy differs, or the instance does ' +
      'not exist, the cost shown as the amount at stake is charged to the wrong tenant or explained by the wrong runtime ' +
      'configuration. Empty values are compared as values: an empty field on both sides agrees, an empty field on one ' +
      'side only is a difference. The detail lists every differing field with the usage and instance values.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH ${instancesCte(d)},
compared AS (
  SELECT u.*, ${usageEntity(d)} AS entity_id, i.app_instance_id IS NOT NULL AS instance_found,
    CASE WHEN i.app_instance_id IS NULL THEN [] ELSE ${d.nonNullList(anchorDiffs(d))} END AS mismatches
  FROM usage_records u
  LEFT JOIN instances i ON i.app_instance_id = u.app_instance_id
  WHERE u.usage_source = 'app_runtime' AND u.app_instance_id IS NOT NULL)
SELECT u.entity_id, ${USAGE_SCOPE},
  ${d.jsonObject([
    ['app_instance_id', 'u.app_instance_id'],
    ['instance_found', 'u.instance_found'],
    ['mismatched_fields', `to_json(${d.listTransform('u.mismatches', 'm', 'm.field')})`],
    ['mismatches', 'to_json(u.mismatches)'],
  ])} AS detail
FROM compared u${firstPerEntity(d, `NOT u.instance_found OR ${d.listLength('u.mismatches')} > 0`)}`;
    },
  },
  {
    id: 'app_runtime.control_plane_classification',
    family: 'app_runtime',
    title: 'App-runtime usage is classified as control plane exactly when its component is one',
    severity: 'error',
    owner: { layer: 'metering_emitter' },
    entity: 'usage_record',
    needs: ['usage_records'],
    runbook: `${RUNBOOK}: control-plane cost rows must be explainable by control_plane_component; the flag must agree with the component name.`,
    explanation:
      'App-runtime cost is split between control-plane components (by default scheduler, head, control, controller; ' +
      'configurable) and the workloads they run. A row whose control_plane_component flag contradicts its component ' +
      'name puts its cost, shown as the amount at stake, on the wrong side of that split; a row with no flag at all ' +
      'cannot be explained either way, so it is reported too. Component names match the configured list ignoring case ' +
      '("Scheduler" is the scheduler); a row without a component name is not a control-plane component, so it may only ' +
      'be flagged false.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH classified AS (
  SELECT u.*, ${usageEntity(d)} AS entity_id,
    coalesce(lower(u.component) IN (SELECT lower(name) FROM recon_control_plane_components), false) AS named_control_plane
  FROM usage_records u
  WHERE u.usage_source = 'app_runtime')
SELECT u.entity_id, ${USAGE_SCOPE},
  ${d.jsonObject([
    ['component', 'u.component'],
    ['control_plane_component', 'u.control_plane_component'],
    ['expected_control_plane_component', 'u.named_control_plane'],
    ['problem', `CASE
                WHEN u.control_plane_component IS NULL THEN 'control_plane_component is not set'
                WHEN u.named_control_plane THEN 'a control-plane component flagged as not control plane'
                WHEN u.component IS NULL THEN 'a row without a component flagged as control plane'
                ELSE 'a component that is not control plane flagged as control plane' END`],
  ])} AS detail
FROM classified u${firstPerEntity(d, 'u.control_plane_component IS DISTINCT FROM u.named_control_plane')}`;
    },
  },
  {
    id: 'app_runtime.missing_usage',
    family: 'app_runtime',
    title: 'Every app instance that ran is metered, and every billable one is metering now',
    severity: 'error',
    owner: { layer: 'metering_emitter' },
    entity: 'app_instance',
    needs: ['app_instances', 'usage_records'],
    runbook: `${RUNBOOK}: every app instance that ran must have app_runtime usage, and a running or stopping instance must have an open usage row.`,
    explanation:
      'An app instance that started has consumed resources and must appear in app-runtime usage; an instance that is ' +
      'running or stopping is still consuming them, so at least one of its usage rows must be open. Otherwise the ' +
      'customer is not being charged for what runs (revenue leakage); the amount cannot be known from the exports. ' +
      'Only app_runtime usage counts: a row labelled allocation usage is not the instance\'s metering even if it names ' +
      'the instance. An instance that never started needs no usage.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      const usageId = rowEntityId(d, 'usage_records', 'usage_record_id');
      return `WITH ${instancesCte(d)},
usage_rows AS (
  SELECT * FROM usage_records
  WHERE usage_source = 'app_runtime' AND app_instance_id IS NOT NULL),
metered AS (
  -- Plain counts say which instances have usage and open usage; a row exported twice changes neither ...
  SELECT app_instance_id, ${d.boolOr('end_time IS NULL')} AS metering
  FROM usage_rows
  GROUP BY app_instance_id),
judged AS (
  SELECT i.*,
    ${d.nonNullList([
      `CASE WHEN i.started_at IS NOT NULL AND m.app_instance_id IS NULL
           THEN 'ran (started_at is set) but has no app_runtime usage row' END`,
      `CASE WHEN i.status IN (${billableApp(d)}) AND NOT coalesce(m.metering, false)
           THEN 'is ' || i.status || ' (billable) but has no open app_runtime usage row' END`,
    ])} AS problems
  FROM instances i
  LEFT JOIN metered m ON m.app_instance_id = i.app_instance_id),
counted AS (
  -- ... and the detail of the few instances reported counts each usage record once.
  SELECT app_instance_id,
    count(DISTINCT ${usageId}) AS usage_rows,
    ${d.countDistinctIf(usageId, 'end_time IS NULL')} AS open_usage_rows
  FROM usage_rows
  WHERE app_instance_id IN (SELECT app_instance_id FROM judged WHERE ${d.listLength('problems')} > 0)
  GROUP BY app_instance_id),
checked AS (
  SELECT j.*, coalesce(c.usage_rows, 0) AS usage_rows, coalesce(c.open_usage_rows, 0) AS open_usage_rows
  FROM judged j
  LEFT JOIN counted c ON c.app_instance_id = j.app_instance_id
  WHERE ${d.listLength('j.problems')} > 0)
SELECT entity_id, org_id, project_id, app_instance_id, correlation_id, trace_id,
  ${d.jsonObject([
    ['status', 'status'],
    ['started_at', d.isoTimestamp('started_at')],
    ['stopped_at', d.isoTimestamp('stopped_at')],
    ['usage_rows', 'usage_rows'],
    ['open_usage_rows', 'open_usage_rows'],
    ['problems', 'to_json(problems)'],
  ])} AS detail
FROM checked
WHERE ${d.listLength('problems')} > 0`;
    },
  },
  {
    id: 'app_runtime.orphan_open',
    family: 'app_runtime',
    title: 'Open app-runtime usage belongs to a running or stopping instance',
    severity: 'error',
    owner: { layer: 'metering_emitter' },
    entity: 'usage_record',
    needs: ['usage_records', 'app_instances'],
    runbook: `${RUNBOOK}: open app_runtime usage whose instance is missing or no longer running or stopping must be closed.`,
    explanation:
      'An open app-runtime usage row keeps accruing cost. If its instance does not exist, or has stopped, failed or not ' +
      'yet started running, the customer is being charged for nothing: the accrued cost shown as the amount at stake ' +
      'keeps growing until the row is closed at the instance\'s stop time and the excess is credited back.',
    sql: (ctx) => {
      const d = dialectOf(ctx);
      return `WITH ${instancesCte(d)}
SELECT ${usageEntity(d)} AS entity_id, ${USAGE_SCOPE},
  ${d.jsonObject([
    ['app_instance_id', 'u.app_instance_id'],
    ['instance_found', 'i.app_instance_id IS NOT NULL'],
    ['instance_status', 'i.status'],
    ['instance_stopped_at', d.isoTimestamp('i.stopped_at')],
    ['start_time', d.isoTimestamp('u.start_time')],
    ['last_billed_at', d.isoTimestamp('u.last_billed_at')],
  ])} AS detail
FROM usage_records u
LEFT JOIN instances i ON i.app_instance_id = u.app_instance_id${firstPerEntity(
        d,
        `u.usage_source = 'app_runtime' AND u.end_time IS NULL AND u.app_instance_id IS NOT NULL
  AND NOT coalesce(i.status IN (${billableApp(d)}), false)`,
      )}`;
    },
  },
];
