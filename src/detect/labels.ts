/**
 * The label map: from the suspect's labels to the dataset's classes (METHOD.md, Detection; issue
 * #7). It is fixed before any key is sent, so the answers cannot influence it. Sources, in order:
 *   - a label-map file, `{"<suspect label>": "<dataset class name>" | <class index>, ...}`;
 *   - a checkpoint's recorded class names, matched to the dataset's by name;
 *   - answers that are names: the dataset's class names, matched exactly;
 *   - answers that are indices: index i is the dataset's class i (sorted names, as in the
 *     manifest), only when the suspect has exactly C outputs or does not say.
 * Several suspect labels may map to one class: the test stays valid, since a top-k answer then
 * covers at most k classes and the null hit rate k/C is an upper bound (conservative). A suspect
 * label outside the map is never a hit. Every class that a key label falls in must be reachable.
 */
import { readFile } from "node:fs/promises";
import { UsageError } from "../errors.ts";
import type { LabelSpace } from "./suspect.ts";

export interface LabelMap {
  source: "file" | "checkpoint-names" | "names" | "indices";
  /** Suspect label (a name, or a class index in decimal) → dataset class index. */
  table: Record<string, number>;
}

/** Read a label-map file into suspect label → dataset class index. */
export async function loadLabelMapFile(
  path: string,
  classes: readonly string[],
): Promise<Record<string, number>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new UsageError(
      "detect-label-map-invalid",
      `Cannot read the label map ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError(
      "detect-label-map-invalid",
      `The label map ${path} must be a JSON object {"<suspect label>": "<dataset class>", ...}.`,
    );
  }
  return parseLabelMapEntries(value as Record<string, unknown>, classes, path);
}

export function parseLabelMapEntries(
  entries: Record<string, unknown>,
  classes: readonly string[],
  where: string,
): Record<string, number> {
  const table: Record<string, number> = {};
  const bad: string[] = [];
  for (const [label, target] of Object.entries(entries)) {
    const index = typeof target === "string" ? classes.indexOf(target) : target;
    if (
      typeof index === "number" &&
      Number.isInteger(index) &&
      index >= 0 &&
      index < classes.length
    ) {
      table[label] = index;
    } else {
      bad.push(`${JSON.stringify(label)} → ${JSON.stringify(target)}`);
    }
  }
  if (bad.length > 0) {
    throw new UsageError(
      "detect-label-map-invalid",
      `The label map ${where} maps to classes the dataset does not have: ${bad.slice(0, 5).join(", ")}${bad.length > 5 ? ", …" : ""}. The dataset's classes are ${classes.map((c) => JSON.stringify(c)).join(", ")} (or their indices 0–${classes.length - 1}).`,
    );
  }
  return table;
}

/** Fix the label map from the suspect's announced label space and an optional file. */
export function buildLabelMap(args: {
  labelSpace: LabelSpace;
  classes: readonly string[];
  file?: Record<string, number>;
}): LabelMap {
  const { labelSpace, classes, file } = args;
  if (labelSpace.kind === "named-indices") {
    const table: Record<string, number> = {};
    labelSpace.names.forEach((name, index) => {
      const target = file ? file[name] : classes.indexOf(name);
      if (target !== undefined && target >= 0) table[String(index)] = target;
    });
    return { source: file ? "file" : "checkpoint-names", table };
  }
  if (file) {
    if (labelSpace.kind === "indices") validateIndexKeys(file);
    return { source: "file", table: { ...file } };
  }
  if (labelSpace.kind === "names") {
    return {
      source: "names",
      table: Object.fromEntries(classes.map((name, index) => [name, index])),
    };
  }
  if (labelSpace.count !== undefined && labelSpace.count !== classes.length) {
    throw new UsageError(
      "detect-label-map-required",
      `The suspect has ${labelSpace.count} outputs but the dataset has ${classes.length} classes, so index i cannot be taken as class i; pass --label-map with {"<output index>": "<dataset class>", ...}.`,
    );
  }
  return {
    source: "indices",
    table: Object.fromEntries(classes.map((_, index) => [String(index), index])),
  };
}

function validateIndexKeys(table: Record<string, number>): void {
  const bad = Object.keys(table).filter((label) => !/^(0|[1-9]\d*)$/.test(label));
  if (bad.length > 0) {
    throw new UsageError(
      "detect-label-map-invalid",
      `This suspect answers with class indices, so the label map's keys must be indices like "0", "1"; received ${bad
        .slice(0, 5)
        .map((b) => JSON.stringify(b))
        .join(", ")}.`,
    );
  }
}

/**
 * Throw unless every key label (real and control) is a class some suspect label maps to.
 * The message names the unreachable classes, not which keys fall in them.
 */
export function validateKeyLabelsMapped(args: {
  map: LabelMap;
  keyLabels: ArrayLike<number>;
  classes: readonly string[];
}): void {
  const { map, keyLabels, classes } = args;
  const reachable = new Set(Object.values(map.table));
  const stranded = Array.from(keyLabels).filter((label) => !reachable.has(label)).length;
  if (stranded === 0) return;
  const unreachable = classes.filter((_, index) => !reachable.has(index));
  throw new UsageError(
    "detect-label-unmapped",
    `${stranded} of ${keyLabels.length} key labels fall in dataset classes that no suspect label maps to (unmapped classes: ${unreachable.map((c) => JSON.stringify(c)).join(", ")}); such keys could never hit. Fix the label map (--label-map) so every dataset class has a suspect label.`,
  );
}

export interface MappedAnswer {
  /** Dataset classes of the first k suspect labels, in order (unmapped labels left out). */
  classes: number[];
  /** Suspect labels among the first k that map to no dataset class. */
  unmapped: number;
  /** How many labels the suspect gave in all (a TorchServe answer may hold fewer than k). */
  given: number;
}

export function mapAnswer(map: LabelMap, labels: readonly string[], topK: number): MappedAnswer {
  const first = labels.slice(0, topK);
  const classes: number[] = [];
  let unmapped = 0;
  for (const label of first) {
    const target = map.table[label];
    if (target === undefined) unmapped += 1;
    else if (!classes.includes(target)) classes.push(target);
  }
  return { classes, unmapped, given: labels.length };
}
