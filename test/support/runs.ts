/**
 * How many generated cases (or kills) a long property suite runs: `name` in
 * the environment if set; else `full` against a PostgreSQL server (the CI's
 * database suites, DATABASE_URL), and `quick` in the README's `npm test`,
 * which must stay within about five minutes on a fresh machine.
 */
export function runs(name: string, full: number, quick: number): number {
  const set = process.env[name];
  if (set !== undefined) return Number(set);
  return process.env.DATABASE_URL ? full : quick;
}
