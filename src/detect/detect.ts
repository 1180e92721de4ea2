/**
 * `taggants detect`, the black-box detection of METHOD.md ("Detection") against any suspect:
 * load the commitment and check that the keys reproduce it, fix the label map, query every key
 * (and the control keys) once in a random order, count top-k hits, compute the exact binomial
 * p-value, decide at α, and write the evidence report.
 */
import { randomInt } from "node:crypto";
import type { Terminal } from "../cli/terminal.ts";
import { UsageError } from "../errors.ts";
import {
  commitmentJson,
  loadCommitment,
  keyParamsOf,
  validateKeysAgainstCommitment,
  type CommitmentRecord,
} from "../keys/commitment.ts";
import { deriveKeys, type Key } from "../keys/derive.ts";
import { loadKeySecret } from "../keys/secret.ts";
import { loadManifest } from "../manifest/build.ts";
import type { ManifestSummary } from "../manifest/format.ts";
import { createdBy } from "../manifest/version.ts";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./http.ts";
import { pngEncoderVersion } from "./images.ts";
import {
  buildLabelMap,
  loadLabelMapFile,
  validateKeyLabelsMapped,
  type LabelMap,
} from "./labels.ts";
import type { Predictor } from "./predictor.ts";
import { runQueries, type PlannedQuery, type QueryRecord } from "./query.ts";
import {
  REPORT_SCHEMA,
  saveReport,
  validateReportDestination,
  type CommitmentFields,
  type DetectionReport,
} from "./report.ts";
import { parseSuspectSpec } from "./spec.ts";
import { openSuspect } from "./suspects/index.ts";
import type { Suspect } from "./suspect.ts";
import { computeDetection, type DetectionResult } from "./verdict.ts";

export interface DetectOptions {
  suspect: string;
  keyFile: string;
  commitment: string;
  manifest: string;
  out: string;
  /** Replace a report already in `out` (otherwise detection refuses to start). */
  force?: boolean;
  topK: number;
  /**
   * M control keys: key indices [K, K + M) of the same derivation, never used for signing.
   * Default K.
   */
  controlKeys?: number;
  alpha: number;
  confidence: number;
  labelMap?: string;
  inputSize?: [number, number];
  concurrency: number;
  policy: RetryPolicy;
  /** Most key images that may be sent; default K + M. */
  queryBudget?: number;
  terminal: Terminal;
  signal: AbortSignal;
  startPredictor?: (checkpoint: string) => Promise<Predictor>;
}

export interface DetectOutcome {
  report: DetectionReport;
  paths: { json: string; markdown: string };
}

export const DEFAULT_DETECT_SETTINGS = {
  alpha: 0.01,
  confidence: 0.95,
  concurrency: 4,
  policy: DEFAULT_RETRY_POLICY,
} as const;

export async function runDetection(options: DetectOptions): Promise<DetectOutcome> {
  const { terminal } = options;
  await validateReportDestination(options.out, options.force);
  const record = await loadCommitment(options.commitment);
  const manifest = await loadManifest(options.manifest);
  const datasetRole = validateManifestMatches(record, manifest, options.manifest);
  const controlKeys = options.controlKeys ?? record.keyCount;
  validateSettings({ ...options, controlKeys }, record);

  const { keys, controls } = await loadKeys({ keyFile: options.keyFile, controlKeys, record });
  const spec = await parseSuspectSpec(options.suspect);
  const suspect = await openSuspect(spec, {
    keyGeometry: { channels: record.channels, resolution: record.resolution },
    inputSize: options.inputSize ?? uniformImageSize(manifest),
    policy: options.policy,
    terminal,
    signal: options.signal,
    startPredictor: options.startPredictor,
  });
  try {
    for (const note of suspect.description.notes) terminal.warn(note);
    const map = await fixLabelMap({
      suspect,
      manifest,
      labelMap: options.labelMap,
      keys: [...keys, ...controls],
    });
    terminal.info(
      `label map: ${map.source}, ${Object.keys(map.table).length} suspect labels → ${manifest.classes.length} dataset classes`,
    );

    const queries = shuffled([
      ...keys.map((key) => planned("key", key, record)),
      ...controls.map((key) => planned("control", key, record)),
    ]);
    const progress = terminal.progress("querying the suspect", queries.length);
    const records = await runQueries({
      suspect,
      queries,
      concurrency: options.concurrency,
      signal: options.signal,
      onSettled: (done) => progress.tick(done),
    }).catch((error: unknown) => {
      progress.fail();
      throw error;
    });
    progress.stop();

    const labels = new Map([...keys, ...controls].map((key) => [key.index, key.label]));
    const result = computeDetection({
      records,
      labelOf: (_role, index) => labels.get(index)!,
      map,
      topK: options.topK,
      classes: record.classes,
      alpha: options.alpha,
      confidence: options.confidence,
    });
    const report = buildReport({
      options,
      record,
      manifest: { summary: manifest, role: datasetRole },
      suspect,
      map,
      queryCount: { keys: keys.length, controls: controls.length },
      records,
      result,
    });
    const paths = await saveReport(options.out, report);
    return { report, paths };
  } finally {
    await suspect.close();
  }
}

function buildReport(args: {
  options: DetectOptions;
  record: CommitmentRecord;
  manifest: { summary: ManifestSummary; role: "original" | "signed" };
  suspect: Suspect;
  map: LabelMap;
  queryCount: { keys: number; controls: number };
  records: QueryRecord[];
  result: DetectionResult;
}): DetectionReport {
  const { options, record, manifest, map, queryCount } = args;
  const description = args.suspect.description;
  return {
    schema: REPORT_SCHEMA,
    created_at: new Date().toISOString(),
    created_by: createdBy(),
    commitment: {
      ...commitmentFields(record),
      file: options.commitment,
      keys_reproduce_commitment: true,
    },
    dataset: {
      manifest: options.manifest,
      root_hash: manifest.summary.root_hash,
      role: manifest.role,
      classes: manifest.summary.classes,
    },
    suspect: {
      kind: description.kind,
      spec: description.spec,
      endpoint: description.endpoint,
      request: description.request,
      answer: description.answer,
      label_space: description.labelSpace,
      header_names: description.headerNames,
      metadata: description.metadata,
      notes: description.notes,
    },
    label_map: map,
    settings: {
      top_k: options.topK,
      alpha: options.alpha,
      confidence: options.confidence,
      control_keys: queryCount.controls,
      query_budget: options.queryBudget ?? queryCount.keys + queryCount.controls,
      concurrency: options.concurrency,
      timeout_ms: options.policy.timeoutMs,
      max_attempts: options.policy.maxAttempts,
      png_encoder: pngEncoderVersion(),
    },
    queries: args.records,
    result: args.result,
  };
}

/** The manifest must be the original or the signed dataset named by the commitment. */
function validateManifestMatches(
  record: CommitmentRecord,
  manifest: ManifestSummary,
  path: string,
): "original" | "signed" {
  if (manifest.classes.length !== record.classes) {
    throw new UsageError(
      "detect-manifest-mismatch",
      `The manifest ${path} has ${manifest.classes.length} classes but the commitment was made for C = ${record.classes}; pass the manifest of the signed (or original) dataset of this commitment.`,
    );
  }
  if (manifest.root_hash === record.signedRoot) return "signed";
  if (manifest.root_hash === record.originalRoot) return "original";
  throw new UsageError(
    "detect-manifest-mismatch",
    `The manifest ${path} has root hash ${manifest.root_hash}, which is neither the commitment's signed dataset (${record.signedRoot}) nor its original dataset (${record.originalRoot}); pass the manifest published with this commitment.`,
  );
}

function validateSettings(
  options: DetectOptions & { controlKeys: number },
  record: CommitmentRecord,
): void {
  const problems: string[] = [];
  const C = record.classes;
  if (!Number.isInteger(options.topK) || options.topK < 1 || options.topK >= C)
    problems.push(`--top-k ${options.topK} (expected an integer with 1 ≤ k < C = ${C})`);
  if (!Number.isInteger(options.controlKeys) || options.controlKeys < 0)
    problems.push(`--control-keys ${options.controlKeys} (expected an integer ≥ 0)`);
  if (!(options.alpha > 0 && options.alpha < 1))
    problems.push(`--alpha ${options.alpha} (expected a number in (0, 1))`);
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
    problems.push(`--concurrency ${options.concurrency} (expected an integer ≥ 1)`);
  const needed = record.keyCount + options.controlKeys;
  if (options.queryBudget !== undefined && options.queryBudget < needed) {
    problems.push(
      `--query-budget ${options.queryBudget} (the ${record.keyCount} keys and ${options.controlKeys} control keys need ${needed} queries; lower --control-keys or raise the budget)`,
    );
  }
  if (problems.length > 0)
    throw new UsageError(
      "detect-options-invalid",
      `Invalid detection settings: ${problems.join("; ")}.`,
    );
}

/** The K committed keys (checked against the commitment) and M control keys after them. */
async function loadKeys(args: {
  keyFile: string;
  controlKeys: number;
  record: CommitmentRecord;
}): Promise<{ keys: Key[]; controls: Key[] }> {
  const { record } = args;
  const secret = await loadKeySecret(args.keyFile);
  const params = keyParamsOf(record);
  // Derivation extends, never changes, the first keys: K + M keys give the committed K first.
  const all = deriveKeys(secret, { ...params, count: params.count + args.controlKeys });
  const keys = all.slice(0, params.count);
  validateKeysAgainstCommitment({ record, keys });
  return { keys, controls: all.slice(params.count) };
}

async function fixLabelMap(args: {
  suspect: Suspect;
  manifest: ManifestSummary;
  labelMap: string | undefined;
  keys: Key[];
}): Promise<LabelMap> {
  const { suspect, manifest } = args;
  const file = args.labelMap ? await loadLabelMapFile(args.labelMap, manifest.classes) : undefined;
  const map = buildLabelMap({
    labelSpace: suspect.description.labelSpace,
    classes: manifest.classes,
    file,
  });
  validateKeyLabelsMapped({
    map,
    keyLabels: args.keys.map((key) => key.label),
    classes: manifest.classes,
  });
  return map;
}

function planned(role: "key" | "control", key: Key, record: CommitmentRecord): PlannedQuery {
  return {
    role,
    index: key.index,
    image: {
      channels: record.channels,
      height: record.resolution,
      width: record.resolution,
      data: key.image,
    },
  };
}

/** A uniformly random order (Fisher–Yates), so the suspect cannot tell controls by position. */
function shuffled<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** [height, width] when every image of the dataset has one size, else undefined. */
export function uniformImageSize(manifest: ManifestSummary): [number, number] | undefined {
  const { width, height } = manifest.formats;
  if (width.min !== width.max || height.min !== height.max) return undefined;
  return [height.min, width.min];
}

export function commitmentFields(record: CommitmentRecord): CommitmentFields {
  // The report carries the commitment file's fields, less its schema and provenance.
  const { schema, created_by, ...fields } = commitmentJson(record);
  return fields;
}
