/**
 * `taggants detect verify`: check an evidence report with the key secret (issue #7). Everything
 * the decision rests on is recomputed, nothing is taken from the report's own conclusions:
 *   - the keys derived from the secret reproduce the recorded (and optionally a published)
 *     commitment, and the dataset root is one of the commitment's;
 *   - every committed key and control key was queried exactly once;
 *   - each query's pixels and request are rebuilt from the derived key and hash as recorded;
 *   - each recorded response hashes as recorded and reads to the recorded labels;
 *   - the label map follows from what the suspect announced (unless it came from a file);
 *   - hits, log10 p, intervals, control test and verdict recomputed equal the recorded ones.
 * What it cannot show: that the suspect really sent those responses (it does not sign them).
 */
import { isDeepStrictEqual } from "node:util";
import { computeCommitment, loadCommitment } from "../keys/commitment.ts";
import { deriveKeys, type Key } from "../keys/derive.ts";
import { loadKeySecret } from "../keys/secret.ts";
import { AnswerUnreadableError, encodeRequest, parseAnswer } from "./formats.ts";
import { pngEncoderVersion } from "./images.ts";
import { buildLabelMap } from "./labels.ts";
import { bodyBytes, type QueryRecord } from "./query.ts";
import { sha256Hex } from "./images.ts";
import type { DetectionReport } from "./report.ts";
import { computeDetection, type DetectionResult } from "./verdict.ts";

export interface VerifyCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface VerifyOutcome {
  ok: boolean;
  checks: VerifyCheck[];
  /** Problems that do not fail verification (e.g. a PNG encoder of another version). */
  warnings: string[];
  recomputed: DetectionResult;
}

export async function verifyReport(args: {
  report: DetectionReport;
  keyFile: string;
  /** A published commitment file the report's commitment must equal. */
  commitmentFile?: string;
}): Promise<VerifyOutcome> {
  const { report } = args;
  const c = report.commitment;
  const secret = await loadKeySecret(args.keyFile);
  const params = {
    count: c.key_count,
    resolution: c.resolution,
    channels: c.channels,
    classes: c.classes,
    datasetId: c.dataset_id,
  };
  const all = deriveKeys(secret, { ...params, count: c.key_count + report.settings.control_keys });
  const checks: VerifyCheck[] = [];
  const warnings: string[] = [];

  const recomputedCommitment = computeCommitment({
    params,
    keys: all.slice(0, c.key_count),
    originalRoot: c.original_root,
    signedRoot: c.signed_root,
  });
  checks.push(
    check(
      "commitment",
      recomputedCommitment === c.commitment,
      `the keys give ${recomputedCommitment}; the report records ${c.commitment}`,
    ),
  );
  if (args.commitmentFile) {
    const published = await loadCommitment(args.commitmentFile);
    checks.push(
      check(
        "published commitment",
        published.commitment === c.commitment,
        `${args.commitmentFile} holds ${published.commitment}`,
      ),
    );
  }
  const root = report.dataset.root_hash;
  checks.push(
    check(
      "dataset root",
      root === c.original_root || root === c.signed_root,
      `manifest root ${root} is one of the commitment's dataset roots`,
    ),
  );

  checks.push(coverageCheck(report, all.length));
  const queryProblems = await checkQueries(report, all, warnings);
  checks.push(
    check(
      "queries",
      queryProblems.length === 0,
      queryProblems.length === 0
        ? `${report.queries.length} requests rebuilt and responses re-read as recorded`
        : queryProblems.slice(0, 10).join("; "),
    ),
  );
  checks.push(labelMapCheck(report));

  const labels = new Map(all.map((key) => [key.index, key.label]));
  const recomputed = computeDetection({
    records: report.queries,
    labelOf: (_role, index) => labels.get(index) ?? -1,
    map: report.label_map,
    topK: report.settings.top_k,
    classes: c.classes,
    alpha: report.settings.alpha,
    confidence: report.settings.confidence,
  });
  checks.push(
    check(
      "statistics",
      isDeepStrictEqual(roundTrip(recomputed), roundTrip(report.result)),
      describeDifference(recomputed, report.result),
    ),
  );
  return { ok: checks.every((entry) => entry.ok), checks, warnings, recomputed };
}

function check(name: string, ok: boolean, detail: string): VerifyCheck {
  return { name, ok, detail };
}

/** Every key index 0..K+M-1 queried exactly once, with the right role. */
function coverageCheck(report: DetectionReport, total: number): VerifyCheck {
  const K = report.commitment.key_count;
  const seen = new Map<number, number>();
  const problems: string[] = [];
  for (const query of report.queries) {
    seen.set(query.index, (seen.get(query.index) ?? 0) + 1);
    const expectedRole = query.index < K ? "key" : "control";
    if (query.index >= total || query.role !== expectedRole)
      problems.push(`query ${query.sequence} claims ${query.role} ${query.index}`);
  }
  for (let index = 0; index < total; index++) {
    const times = seen.get(index) ?? 0;
    if (times !== 1) problems.push(`key index ${index} queried ${times} times`);
  }
  const detail =
    problems.length === 0
      ? `each of the ${K} keys and ${total - K} control keys queried once`
      : problems.slice(0, 10).join("; ");
  return check("coverage", problems.length === 0, detail);
}

async function checkQueries(
  report: DetectionReport,
  keys: Key[],
  warnings: string[],
): Promise<string[]> {
  const problems: string[] = [];
  const c = report.commitment;
  const pngMayDiffer = report.settings.png_encoder !== pngEncoderVersion();
  for (const query of report.queries) {
    const key = keys[query.index];
    if (!key) continue; // reported by the coverage check
    const image = {
      channels: c.channels,
      height: c.resolution,
      width: c.resolution,
      data: key.image,
    };
    const rebuilt = await encodeRequest(report.suspect.request, image);
    const where = `query ${query.sequence}`;
    if (rebuilt.imageSha256 !== query.image_sha256)
      problems.push(`${where}: the pixels sent are not those of ${query.role} ${query.index}`);
    if (rebuilt.requestSha256 !== query.request_sha256) {
      const png =
        report.suspect.request.encoding === "png" ||
        (report.suspect.request.encoding === "json" &&
          report.suspect.request.image === "base64-png");
      if (png && pngMayDiffer)
        warnings.push(
          `${where}: request bytes differ, but the report's PNG encoder (${report.settings.png_encoder}) is not this one (${pngEncoderVersion()}); the pixels match`,
        );
      else problems.push(`${where}: the request does not hash as recorded`);
    }
    problems.push(...checkResponse(report, query));
  }
  return problems;
}

function checkResponse(report: DetectionReport, query: QueryRecord): string[] {
  const where = `query ${query.sequence}`;
  if (query.response === null) {
    return query.outcome === "answered" || query.response_sha256 !== null
      ? [`${where}: the response is missing`]
      : [];
  }
  const body = bodyBytes(query.response);
  if (sha256Hex(body) !== query.response_sha256)
    return [`${where}: the recorded response does not hash to ${query.response_sha256}`];
  if (query.outcome === "refused") return [];
  let labels: string[] | null = null;
  try {
    labels = parseAnswer(report.suspect.answer, body);
  } catch (error) {
    if (!(error instanceof AnswerUnreadableError)) throw error;
  }
  if (query.outcome === "failed")
    return labels === null || query.status === null || query.status >= 300
      ? []
      : [`${where}: recorded as unreadable but the response reads as labels`];
  if (labels === null) return [`${where}: the recorded response does not read as labels`];
  return isDeepStrictEqual(labels, query.labels)
    ? []
    : [`${where}: the recorded labels are not what the response says`];
}

function labelMapCheck(report: DetectionReport): VerifyCheck {
  if (report.label_map.source === "file") {
    return check(
      "label map",
      true,
      "taken from a label-map file (compare it with the file by hand)",
    );
  }
  const expected = buildLabelMap({
    labelSpace: report.suspect.label_space,
    classes: report.dataset.classes,
  });
  const ok = isDeepStrictEqual(expected, report.label_map);
  return check(
    "label map",
    ok,
    ok
      ? `follows from the suspect's labels (${expected.source})`
      : "the recorded label map does not follow from the suspect's announced labels",
  );
}

/** Numbers as JSON writes and reads them, so recorded and recomputed values compare exactly. */
function roundTrip(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

function describeDifference(recomputed: DetectionResult, recorded: DetectionResult): string {
  const r = recomputed.keys;
  const summary = `recomputed ${r.hits}/${r.answered} hits, log10 p = ${r.log10_p.toFixed(4)}, ${recomputed.verdict}`;
  return `${summary}; recorded ${recorded.keys.hits}/${recorded.keys.answered} hits, log10 p = ${recorded.keys.log10_p.toFixed(4)}, ${recorded.verdict}`;
}
