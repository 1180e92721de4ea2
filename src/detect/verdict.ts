/**
 * From recorded answers to a decision (METHOD.md, Detection). Hits are counted over the keys the
 * suspect answered: whether it answers depends on the key image only, and the key labels are
 * drawn independently of the images, so under H0 the answered keys still hit with probability
 * exactly k/C each — the binomial test stays valid on that subset, and a detection stands even
 * when some keys were refused. A refusal can hide a positive, though, so a negative result with
 * refusals, failures, unreadable or constant answers is **inconclusive**, never "not trained on
 * the data".
 *
 * Control keys are keys of the same derivation never used for signing. Their labels are just as
 * independent of the model, trained on the signed data or not, so their hits follow
 * Binomial(M, k/C) under H0 and H1 alike; an exact two-sided test at α flags a setup where that
 * fails (a label-map error, keys leaking to the suspect, a broken adapter) — then the whole run is
 * inconclusive. By construction a sound setup is flagged in a fraction α of runs.
 */
import { binomialTest, clopperPearson, type Interval } from "../stats/index.ts";
import { mapAnswer, type LabelMap } from "./labels.ts";
import type { QueryRecord, QueryRole } from "./query.ts";

export type Verdict = "detected" | "not-detected" | "inconclusive";

export interface HitCount {
  /** Keys of this role that were queried. */
  queried: number;
  answered: number;
  refused: number;
  failed: number;
  hits: number;
  top_k: number;
  classes: number;
  /** k/C, the hit rate under H0. */
  null_rate: number;
  /** hits / answered, or null when nothing was answered. */
  hit_rate: number | null;
  interval: Interval | null;
}

export interface KeyResult extends HitCount {
  /** log10 P[X ≥ hits], X ~ Binomial(answered, k/C); 0 when nothing was answered. */
  log10_p: number;
}

export interface ControlResult extends HitCount {
  /** log10 of the exact two-sided binomial p-value against k/C. */
  log10_p_two_sided: number;
  consistent_with_chance: boolean;
}

export interface DetectionResult {
  alpha: number;
  keys: KeyResult;
  controls: ControlResult | null;
  answers: {
    /** Distinct top-1 dataset classes over all answered queries. */
    distinct_top1: number;
    /** Answered queries whose first k labels map to no dataset class at all. */
    without_mapped_label: number;
    /** Answered queries that gave fewer than k labels (the test is then conservative). */
    fewer_than_k: number;
  };
  verdict: Verdict;
  /** Why the verdict is what it is, in plain words. */
  reasons: string[];
}

export interface ComputeDetectionOptions {
  records: readonly QueryRecord[];
  /** Key label of each queried key, by role and key index. */
  labelOf: (role: QueryRole, index: number) => number;
  map: LabelMap;
  topK: number;
  classes: number;
  alpha: number;
  confidence?: number;
}

export function computeDetection(options: ComputeDetectionOptions): DetectionResult {
  const mapped = options.records.map((record) =>
    record.outcome === "answered" && record.labels
      ? mapAnswer(options.map, record.labels, options.topK)
      : null,
  );
  const count = (role: QueryRole): HitCount => countHits(options, mapped, role);
  const keyCount = count("key");
  const keys: KeyResult = { ...keyCount, log10_p: keyLog10P(keyCount) };
  const hasControls = options.records.some((record) => record.role === "control");
  const controls = hasControls ? controlResult(count("control"), options.alpha) : null;
  const answered = mapped.filter((m) => m !== null);
  const answers = {
    distinct_top1: new Set(answered.filter((m) => m.classes.length > 0).map((m) => m.classes[0]))
      .size,
    without_mapped_label: answered.filter((m) => m.classes.length === 0).length,
    fewer_than_k: answered.filter((m) => m.given < options.topK).length,
  };
  const constant =
    answered.length >= 2 && new Set(answered.map((m) => m.classes.join(","))).size === 1;
  const { verdict, reasons } = decide({ keys, controls, answers, constant, alpha: options.alpha });
  return { alpha: options.alpha, keys, controls, answers, verdict, reasons };
}

function countHits(
  options: ComputeDetectionOptions,
  mapped: ReadonlyArray<{ classes: number[] } | null>,
  role: QueryRole,
): HitCount {
  const { records, topK, classes } = options;
  let [queried, answered, refused, failed, hits] = [0, 0, 0, 0, 0];
  records.forEach((record, position) => {
    if (record.role !== role) return;
    queried += 1;
    if (record.outcome === "refused") refused += 1;
    if (record.outcome === "failed") failed += 1;
    const answer = mapped[position];
    if (!answer) return;
    answered += 1;
    if (answer.classes.includes(options.labelOf(role, record.index))) hits += 1;
  });
  const interval =
    answered > 0
      ? clopperPearson({ hits, trials: answered, confidence: options.confidence ?? 0.95 })
      : null;
  return {
    queried,
    answered,
    refused,
    failed,
    hits,
    top_k: topK,
    classes,
    null_rate: topK / classes,
    hit_rate: answered > 0 ? hits / answered : null,
    interval,
  };
}

function keyLog10P(count: HitCount): number {
  if (count.answered === 0) return 0;
  return binomialTest({
    hits: count.hits,
    keys: count.answered,
    topK: count.top_k,
    classes: count.classes,
  }).log10P;
}

/** Exact two-sided binomial test: 2·min(P[X ≥ h], P[X ≤ h]), capped at 1. */
export function log10TwoSided(args: {
  hits: number;
  trials: number;
  topK: number;
  classes: number;
}): number {
  const { hits, trials, topK, classes } = args;
  const upper = binomialTest({ hits, keys: trials, topK, classes }).log10P;
  // P[X ≤ h] = P[Y ≥ n − h] with Y = n − X ~ Binomial(n, (C − k)/C).
  const lower = binomialTest({
    hits: trials - hits,
    keys: trials,
    topK: classes - topK,
    classes,
  }).log10P;
  return Math.min(0, Math.log10(2) + Math.min(upper, lower));
}

function controlResult(count: HitCount, alpha: number): ControlResult {
  if (count.answered === 0) return { ...count, log10_p_two_sided: 0, consistent_with_chance: true };
  const log10P = log10TwoSided({
    hits: count.hits,
    trials: count.answered,
    topK: count.top_k,
    classes: count.classes,
  });
  return {
    ...count,
    log10_p_two_sided: log10P,
    consistent_with_chance: log10P > Math.log10(alpha),
  };
}

function decide(args: {
  keys: KeyResult;
  controls: ControlResult | null;
  answers: DetectionResult["answers"];
  constant: boolean;
  alpha: number;
}): { verdict: Verdict; reasons: string[] } {
  const { keys, controls, answers, constant, alpha } = args;
  const doubts = collectDoubts({ keys, controls, answers, constant });
  if (controls && !controls.consistent_with_chance) {
    const rate = `${controls.hits}/${controls.answered}`;
    return {
      verdict: "inconclusive",
      reasons: [
        `the control keys hit ${rate}, inconsistent with chance k/C = ${formatRate(controls.null_rate)} (two-sided log10 p = ${controls.log10_p_two_sided.toFixed(2)} ≤ log10 α): the test's assumptions fail for this setup — check the label map and the adapter`,
        ...doubts,
      ],
    };
  }
  if (keys.answered === 0)
    return {
      verdict: "inconclusive",
      reasons: ["the suspect answered none of the keys", ...doubts],
    };
  const significance = `log10 p = ${keys.log10_p.toFixed(2)} with ${keys.hits}/${keys.answered} keys in the top ${keys.top_k} (chance ${formatRate(keys.null_rate)}), α = ${alpha}`;
  if (keys.log10_p <= Math.log10(alpha))
    return { verdict: "detected", reasons: [significance, ...doubts] };
  if (doubts.length > 0) {
    return {
      verdict: "inconclusive",
      reasons: [
        `not significant (${significance}), but the answers cannot rule the data out`,
        ...doubts,
      ],
    };
  }
  return { verdict: "not-detected", reasons: [`not significant: ${significance}`] };
}

function collectDoubts(args: {
  keys: KeyResult;
  controls: ControlResult | null;
  answers: DetectionResult["answers"];
  constant: boolean;
}): string[] {
  const { keys, controls, answers, constant } = args;
  const doubts: string[] = [];
  const unanswered =
    keys.refused + keys.failed + (controls ? controls.refused + controls.failed : 0);
  if (unanswered > 0) {
    doubts.push(
      `${keys.refused + (controls?.refused ?? 0)} key images were refused and ${keys.failed + (controls?.failed ?? 0)} got no usable answer (the suspect may filter noise inputs)`,
    );
  }
  if (constant) doubts.push("the suspect gave the same answer to every key image");
  if (answers.without_mapped_label > 0) {
    doubts.push(
      `${answers.without_mapped_label} answers hold no label that maps to a dataset class (check the label map)`,
    );
  }
  return doubts;
}

function formatRate(rate: number): string {
  return rate >= 0.01 ? rate.toFixed(3) : rate.toExponential(2);
}
