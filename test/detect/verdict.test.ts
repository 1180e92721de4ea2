import test from "ava";
import type { LabelMap } from "../../src/detect/labels.ts";
import type { QueryRecord, QueryRole } from "../../src/detect/query.ts";
import { computeDetection, log10TwoSided } from "../../src/detect/verdict.ts";

const classes = 10;
const map: LabelMap = {
  source: "names",
  table: Object.fromEntries(Array.from({ length: classes }, (_, c) => [`c${c}`, c])),
};
/** Key i has label i mod 10, control j has label (j + 3) mod 10. */
const labelOf = (role: QueryRole, index: number): number =>
  role === "key" ? index % classes : (index + 3) % classes;

function record(
  role: QueryRole,
  index: number,
  outcome: QueryRecord["outcome"],
  labels: string[] | null,
): QueryRecord {
  return {
    sequence: 0,
    role,
    index,
    image_sha256: "0".repeat(64),
    request_sha256: "0".repeat(64),
    outcome,
    status: outcome === "answered" ? 200 : 400,
    attempts: 1,
    elapsed_ms: 1,
    response_sha256: null,
    response: null,
    labels,
    error: null,
  };
}

const hit = (role: QueryRole, index: number) =>
  record(role, index, "answered", [`c${labelOf(role, index)}`, "c9"]);
const miss = (role: QueryRole, index: number) =>
  record(role, index, "answered", [`c${(labelOf(role, index) + 1) % classes}`]);

function detect(records: QueryRecord[], topK = 1) {
  return computeDetection({ records, labelOf, map, topK, classes, alpha: 0.01 });
}

test("ten hits out of ten keys at top-1 of 10 classes give log10 p = -10 and a detection", (t) => {
  const result = detect(Array.from({ length: 10 }, (_, i) => hit("key", i)));
  t.is(result.keys.hits, 10);
  t.true(Math.abs(result.keys.log10_p - -10) < 1e-9);
  t.is(result.verdict, "detected");
});

test("two hits out of ten keys at top-1 of 10 are not significant: P[X ≥ 2] = 1 − 0.9¹⁰ − 10·0.1·0.9⁹", (t) => {
  const records = Array.from({ length: 10 }, (_, i) => (i < 2 ? hit("key", i) : miss("key", i)));
  const result = detect(records);
  const p = 1 - 0.9 ** 10 - 10 * 0.1 * 0.9 ** 9;
  t.true(Math.abs(result.keys.log10_p - Math.log10(p)) < 1e-9);
  t.is(result.verdict, "not-detected");
});

test("a refused key makes a negative result inconclusive, never 'not detected'", (t) => {
  const records = Array.from({ length: 10 }, (_, i) =>
    i === 0 ? record("key", i, "refused", null) : miss("key", i),
  );
  const result = detect(records);
  t.is(result.keys.refused, 1);
  t.is(result.keys.answered, 9);
  t.is(result.verdict, "inconclusive");
  t.regex(result.reasons.join(" "), /1 key images were refused/);
});

test("a detection on the answered keys stands even when some keys were refused", (t) => {
  const records = Array.from({ length: 12 }, (_, i) =>
    i < 2 ? record("key", i, "refused", null) : hit("key", i),
  );
  const result = detect(records);
  t.is(result.keys.answered, 10);
  t.is(result.verdict, "detected");
});

test("a suspect that answers one class for everything is inconclusive when not significant", (t) => {
  const records = Array.from({ length: 10 }, (_, i) => record("key", i, "answered", ["c0"]));
  const result = detect(records);
  t.is(result.keys.hits, 1); // key 0 has label 0
  t.is(result.answers.distinct_top1, 1);
  t.is(result.verdict, "inconclusive");
  t.regex(result.reasons.join(" "), /same answer to every key image/);
});

test("control keys hitting far above chance make the run inconclusive even with significant keys", (t) => {
  const records = [
    ...Array.from({ length: 10 }, (_, i) => hit("key", i)),
    ...Array.from({ length: 10 }, (_, j) => hit("control", 10 + j)),
  ];
  const result = detect(records);
  t.false(result.controls!.consistent_with_chance);
  t.is(result.verdict, "inconclusive");
});

test("control keys at chance are reported beside the keys", (t) => {
  const controls = Array.from({ length: 10 }, (_, j) =>
    j === 0 ? hit("control", 10 + j) : miss("control", 10 + j),
  );
  const result = detect([...Array.from({ length: 10 }, (_, i) => hit("key", i)), ...controls]);
  t.is(result.controls!.hits, 1);
  t.true(result.controls!.consistent_with_chance);
  t.is(result.verdict, "detected");
});

test("the two-sided control test matches hand-computed values", (t) => {
  // 0 hits of 10 at p = 0.5: 2 · 0.5¹⁰.
  t.true(
    Math.abs(
      log10TwoSided({ hits: 0, trials: 10, topK: 5, classes: 10 }) - Math.log10(2 * 0.5 ** 10),
    ) < 1e-9,
  );
  // 1 hit of 10 at p = 0.1 is the mode: capped at p = 1.
  t.is(log10TwoSided({ hits: 1, trials: 10, topK: 1, classes: 10 }), 0);
  // 10 of 10 at p = 0.1: 2 · 1e-10.
  t.true(
    Math.abs(log10TwoSided({ hits: 10, trials: 10, topK: 1, classes: 10 }) - Math.log10(2e-10)) <
      1e-9,
  );
});

test("top-k counts a hit anywhere in the first k labels and ignores the rest", (t) => {
  const records = Array.from({ length: 10 }, (_, i) =>
    record("key", i, "answered", ["c9", `c${labelOf("key", i)}`]),
  );
  t.is(detect(records, 1).keys.hits, 1); // only key 9 has label 9
  t.is(detect(records, 2).keys.hits, 10);
});
