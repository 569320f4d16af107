// Reading PostgreSQL's plans in tests: EXPLAIN (FORMAT JSON) of a statement as the store runs it,
// the plan's nodes as a flat list, and a one-line summary for assertion messages. Both drivers
// answer the JSON, PGlite as text and pg already parsed.
import type { Queryable } from '../../src/store/database.js';

export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

/** The node and every node below it. */
export const nodesOf = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodesOf)];

/** "Limit / Index Scan on tenants_created_idx / ...": what each node reads. */
export const describePlan = (plan: PlanNode): string =>
  nodesOf(plan)
    .map((node) => [node['Node Type'], node['Index Name'] ?? node['Relation Name']].filter(Boolean).join(' on '))
    .join(' / ');

/** The plan of `query`; with `options` such as 'ANALYZE, BUFFERS' the statement runs too. */
export async function explain(db: Queryable, query: { text: string; params: readonly unknown[] }, options = ''): Promise<PlanNode> {
  const [row] = await db.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (${options ? `${options}, ` : ''}FORMAT JSON) ${query.text}`, query.params);
  const output = row!['QUERY PLAN'];
  return ((typeof output === 'string' ? JSON.parse(output) : output) as [{ Plan: PlanNode }])[0].Plan;
}
