/**
 * The evidence report of a detection run (issue #7, "Evidence report"): `report.json` for
 * machines and `report.md` for people, written atomically into the output folder. It records
 * the public commitment and that the keys reproduce it, the dataset manifest root, the suspect
 * and how it was queried, every query's pixel/request/response hashes with the raw response, the
 * statistics, the decision at α, and the tool version. It holds no key image, key label or key
 * secret: `taggants detect verify` re-derives those from the key secret to recompute everything.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { UsageError } from "../errors.ts";
import { invalidFileError } from "../invalid-file.ts";
import { writeFileAtomic } from "../manifest/atomic.ts";
import type { AnswerFormat, RequestFormat } from "./formats.ts";
import type { LabelMap } from "./labels.ts";
import type { QueryRecord } from "./query.ts";
import type { LabelSpace } from "./suspect.ts";
import type { DetectionResult } from "./verdict.ts";
import { pathKind } from "../paths.ts";

export const REPORT_SCHEMA = "taggants.detection-report/1";

/** The public commitment file's fields, as in the file (snake_case). */
export interface CommitmentFields {
  commitment: string;
  scheme_version: number;
  key_count: number;
  resolution: number;
  channels: number;
  classes: number;
  dataset_id: string;
  original_root: string;
  signed_root: string;
}

export interface DetectionReport {
  schema: typeof REPORT_SCHEMA;
  created_at: string;
  created_by: string;
  commitment: CommitmentFields & { file: string; keys_reproduce_commitment: boolean };
  dataset: { manifest: string; root_hash: string; role: "original" | "signed"; classes: string[] };
  suspect: {
    kind: string;
    spec: string;
    endpoint: string;
    request: RequestFormat;
    answer: AnswerFormat;
    label_space: LabelSpace;
    header_names: string[];
    metadata: unknown;
    notes: string[];
  };
  label_map: LabelMap;
  settings: {
    top_k: number;
    alpha: number;
    confidence: number;
    /** Control keys are key indices [key_count, key_count + control_keys) of the same derivation. */
    control_keys: number;
    query_budget: number;
    concurrency: number;
    timeout_ms: number;
    max_attempts: number;
    png_encoder: string;
  };
  queries: QueryRecord[];
  result: DetectionResult;
}

const Hex = z.string().regex(/^[0-9a-f]{64}$/);
const QueryRecordSchema = z.strictObject({
  sequence: z.number().int().nonnegative(),
  role: z.enum(["key", "control"]),
  index: z.number().int().nonnegative(),
  image_sha256: Hex,
  request_sha256: Hex,
  outcome: z.enum(["answered", "refused", "failed"]),
  status: z.number().int().nullable(),
  attempts: z.number().int().nonnegative(),
  elapsed_ms: z.number().nonnegative(),
  response_sha256: Hex.nullable(),
  response: z.strictObject({ encoding: z.enum(["utf8", "base64"]), text: z.string() }).nullable(),
  labels: z.array(z.string()).nullable(),
  error: z.string().nullable(),
});

const ReportSchema = z.looseObject({
  schema: z.literal(REPORT_SCHEMA),
  created_at: z.string(),
  created_by: z.string(),
  commitment: z.looseObject({
    commitment: Hex,
    scheme_version: z.number().int(),
    key_count: z.number().int().positive(),
    resolution: z.number().int().positive(),
    channels: z.number().int().positive(),
    classes: z.number().int().min(2),
    dataset_id: z.string(),
    original_root: Hex,
    signed_root: Hex,
  }),
  dataset: z.looseObject({ root_hash: Hex, classes: z.array(z.string()) }),
  suspect: z.looseObject({
    kind: z.string(),
    request: z.looseObject({ encoding: z.string() }),
    answer: z.looseObject({ format: z.string() }),
  }),
  label_map: z.strictObject({
    source: z.enum(["file", "checkpoint-names", "names", "indices"]),
    table: z.record(z.string(), z.number().int().nonnegative()),
  }),
  settings: z.looseObject({
    top_k: z.number().int().positive(),
    alpha: z.number().gt(0).lt(1),
    confidence: z.number().gt(0).lt(1),
    control_keys: z.number().int().nonnegative(),
  }),
  queries: z.array(QueryRecordSchema),
  result: z.looseObject({ verdict: z.enum(["detected", "not-detected", "inconclusive"]) }),
});

/**
 * Refuse, before any query is sent, a folder that already holds a report (unless `force`) or a
 * path that is a file: a report is evidence, and replacing one silently loses it.
 */
export async function validateReportDestination(folder: string, force = false): Promise<void> {
  const kind = await pathKind(folder);
  if (kind === "file") {
    throw new UsageError(
      "detect-out-not-folder",
      `--out ${folder} is a file; expected a folder (new or existing) for report.json and report.md.`,
    );
  }
  if (kind === "missing" || force) return;
  const existing = [];
  for (const name of ["report.json", "report.md"]) {
    if ((await pathKind(join(folder, name))) !== "missing") existing.push(join(folder, name));
  }
  if (existing.length > 0) {
    throw new UsageError(
      "detect-report-exists",
      `${existing.join(" and ")} already exist${existing.length === 1 ? "s" : ""}: give another --out, or --force to replace the report.`,
    );
  }
}

export async function saveReport(
  folder: string,
  report: DetectionReport,
): Promise<{ json: string; markdown: string }> {
  await mkdir(folder, { recursive: true });
  const json = join(folder, "report.json");
  const markdown = join(folder, "report.md");
  await writeFileAtomic(json, JSON.stringify(report, null, 2) + "\n");
  await writeFileAtomic(markdown, renderReportMarkdown(report));
  return { json, markdown };
}

export async function loadReport(path: string): Promise<DetectionReport> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new UsageError(
      "detect-report-invalid",
      `Cannot read the detection report ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const parsed = ReportSchema.safeParse(value);
  if (!parsed.success) {
    throw invalidFileError({
      code: "detect-report-invalid",
      file: path,
      expected: `a detection report (${REPORT_SCHEMA})`,
      error: parsed.error,
    });
  }
  return value as DetectionReport;
}

export function renderReportMarkdown(report: DetectionReport): string {
  const { result, settings, commitment, suspect } = report;
  const keys = result.keys;
  const lines = [
    `# Detection report: ${verdictTitle(result.verdict)}`,
    "",
    `- Suspect: \`${suspect.spec}\` (${suspect.kind}, ${suspect.endpoint})`,
    `- Time: ${report.created_at}; tool: ${report.created_by}`,
    `- Commitment: \`${commitment.commitment}\` — ${commitment.keys_reproduce_commitment ? "the keys reproduce it" : "NOT reproduced"}`,
    `- Dataset manifest root (${report.dataset.role}): \`${report.dataset.root_hash}\`; C = ${keys.classes} classes`,
    `- Label map: ${report.label_map.source} (${Object.keys(report.label_map.table).length} suspect labels)`,
    "",
    "## Result",
    "",
    `| keys | queried | answered | refused | failed | hits (top-k) | k | chance k/C | hit rate | ${(settings.confidence * 100).toFixed(0)} % interval | log10 p |`,
    "|---|---|---|---|---|---|---|---|---|---|---|",
    row("signing keys", keys, keys.log10_p.toFixed(3)),
  ];
  if (result.controls) {
    lines.push(
      row(
        "control keys",
        result.controls,
        `${result.controls.log10_p_two_sided.toFixed(3)} (two-sided)`,
      ),
    );
  }
  lines.push(
    "",
    `Decision at α = ${settings.alpha}: **${result.verdict}**.`,
    "",
    ...result.reasons.map((reason) => `- ${reason}`),
    "",
    "## How it was measured",
    "",
    `Each of the K = ${commitment.key_count} committed keys and ${settings.control_keys} control keys (key indices ${commitment.key_count}–${commitment.key_count + settings.control_keys - 1} of the same derivation, never used for signing) was sent once, in a random order, at most ${settings.concurrency} at a time, with a ${settings.timeout_ms} ms timeout and up to ${settings.max_attempts} attempts. Under H0 (the model never saw the signed data) each key hits with probability exactly k/C, because key labels are drawn uniformly and independently of the model; p = P[Binomial(answered, k/C) ≥ hits].`,
    "",
    ...suspect.notes.map((note) => `- Note: ${note}`),
    "",
    "## Queries",
    "",
    "| # | role | outcome | status | attempts | request SHA-256 | response SHA-256 |",
    "|---|---|---|---|---|---|---|",
    ...report.queries.map(
      (q) =>
        `| ${q.sequence} | ${q.role} | ${q.outcome} | ${q.status ?? "–"} | ${q.attempts} | \`${q.request_sha256.slice(0, 16)}…\` | ${q.response_sha256 ? `\`${q.response_sha256.slice(0, 16)}…\`` : "–"} |`,
    ),
    "",
    "Check this report with `taggants detect verify report.json --key-file <key secret>`.",
    "",
  );
  return lines.join("\n");
}

function row(
  name: string,
  count: DetectionResult["keys"] | NonNullable<DetectionResult["controls"]>,
  log10p: string,
): string {
  const rate = count.hit_rate === null ? "–" : count.hit_rate.toFixed(3);
  const interval = count.interval
    ? `[${count.interval.lower.toFixed(3)}, ${count.interval.upper.toFixed(3)}]`
    : "–";
  return `| ${name} | ${count.queried} | ${count.answered} | ${count.refused} | ${count.failed} | ${count.hits} | ${count.top_k} | ${count.null_rate.toPrecision(3)} | ${rate} | ${interval} | ${log10p} |`;
}

function verdictTitle(verdict: DetectionResult["verdict"]): string {
  if (verdict === "detected") return "the suspect model was trained on the signed data";
  if (verdict === "not-detected") return "no evidence of training on the signed data";
  return "inconclusive";
}
