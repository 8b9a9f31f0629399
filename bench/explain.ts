// `npx node bench/explain.ts`: the plans of every statement (nested ones too) that one step's
// begin_step and complete_step run, on a throwaway durable database with a few hundred finished
// runs and plans already cached in the session, via auto_explain (ANALYZE, nested statements, reported to the client as notices).
// Prints, per statement, its top plan node and actual time: is every hot statement an index scan?
import pg from "pg";
import { startBenchPostgres } from "./lib/postgres.ts";

const db = await startBenchPostgres({ statements: false });
const client = new pg.Client({ connectionString: db.url });
const notices: string[] = [];
client.on("notice", (n) => notices.push(n.message ?? ""));
try {
  await client.connect();
  // Some history, so plans are not those of empty tables.
  // Some history, and this session's plans cached: 300 runs whose first step ran and completed.
  await client.query(`select (throughline.start_run('test_dag', '{}'::jsonb)).token from generate_series(1, 300)`);
  const { rows: roots } = await client.query("select id, attempt from throughline.step where step = 'BOM_CONSUMPTION'");
  for (const r of roots) {
    await client.query("select throughline.begin_step($1, $2, 'explain', interval '30 seconds')", [r.id, r.attempt]);
    await client.query("select throughline.complete_step($1, $2, '{}'::jsonb)", [r.id, r.attempt]);
  }
  await client.query("analyze");
  const { rows: [run] } = await client.query(`select (throughline.start_run('test_dag', '{}'::jsonb)).token`);
  await client.query("load 'auto_explain'");
  for (const s of ["auto_explain.log_min_duration = 0", "auto_explain.log_analyze = on", "auto_explain.log_nested_statements = on",
    "auto_explain.log_level = notice", "auto_explain.log_format = text", "auto_explain.log_timing = on"]) await client.query(`set ${s}`);
  const { rows: [root] } = await client.query(
    "select id, attempt from throughline.step where token = $1 and step = 'BOM_CONSUMPTION'", [run.token]);
  notices.length = 0;
  await client.query("select throughline.begin_step($1, $2, 'explain', interval '30 seconds')", [root.id, root.attempt]);
  const begin = [...notices];
  notices.length = 0;
  await client.query("select throughline.complete_step($1, $2, '{}'::jsonb)", [root.id, root.attempt]);
  const complete = [...notices];
  await client.query("set auto_explain.log_min_duration = -1");
  const show = (title: string, list: string[]) => {
    console.log(`\n== ${title}: ${list.length} statements ==`);
    for (const n of list) {
      const lines = n.split("\n");
      const query = (lines.find((l) => l.startsWith("Query Text:")) ?? lines[0]).replace(/\s+/g, " ").slice(0, 100);
      const plan = lines.filter((l) => /->|^\s*(Update|Insert|Result|Index|Seq|Bitmap|Aggregate|Nested|Hash|Limit|LockRows|Function|ProjectSet|CTE|Sort)/.test(l))
        .map((l) => l.trim().replace(/\(cost=[^)]*\)\s*/, "").replace(/\s+/g, " ")).filter((l) => /Scan|Update on|Insert on|Result|Function/.test(l)).slice(0, 4);
      const duration = n.match(/duration: ([\d.]+) ms/)?.[1];
      console.log(`${(duration ?? "?").padStart(7)} ms  ${query}`);
      for (const p of plan) console.log(`             ${p.slice(0, 120)}`);
    }
  };
  show("begin_step", begin);
  show("complete_step", complete);
} finally {
  await client.end();
  await db.stop();
}
