/**
 * A small JSON path for adapter configs of generic suspects: dotted names and array indices,
 * `predictions[0].labels`, optionally starting with `$`. Enough to say where the image goes in a
 * request and where the labels are in an answer; no wildcards or filters.
 */
import { UsageError } from "../errors.ts";

export type PathStep = string | number;

export function parseJsonPath(path: string): PathStep[] {
  const steps: PathStep[] = [];
  const pattern = /\.?([A-Za-z_][\w-]*)|\[(\d+)\]|\["([^"]+)"\]/y;
  let rest = path.startsWith("$") ? path.slice(1) : path;
  if (rest.startsWith(".")) rest = rest.slice(1);
  pattern.lastIndex = 0;
  while (pattern.lastIndex < rest.length) {
    const start = pattern.lastIndex;
    const match = pattern.exec(rest);
    if (!match || match.index !== start) {
      throw new UsageError(
        "detect-json-path-invalid",
        `Cannot read the JSON path "${path}" at character ${start}; expected names and indices like "predictions[0].labels".`,
      );
    }
    if (match[1] !== undefined) steps.push(match[1]);
    else if (match[2] !== undefined) steps.push(Number(match[2]));
    else steps.push(match[3]!);
  }
  if (steps.length === 0) {
    throw new UsageError("detect-json-path-invalid", `The JSON path "${path}" is empty.`);
  }
  return steps;
}

/** The value at `path`, or `undefined` when any step is missing. */
export function readJsonPath(value: unknown, path: string): unknown {
  let current = value;
  for (const step of parseJsonPath(path)) {
    if (typeof step === "number") {
      if (!Array.isArray(current)) return undefined;
      current = current[step];
    } else {
      if (current === null || typeof current !== "object" || Array.isArray(current))
        return undefined;
      current = (current as Record<string, unknown>)[step];
    }
  }
  return current;
}

/** A copy of `value` (a JSON object template) with `inserted` placed at `path`. */
export function writeJsonPath(value: unknown, path: string, inserted: unknown): unknown {
  const steps = parseJsonPath(path);
  const root: unknown = structuredClone(value ?? (typeof steps[0] === "number" ? [] : {}));
  let current = root as Record<string | number, unknown>;
  steps.forEach((step, position) => {
    const last = position === steps.length - 1;
    if (last) {
      current[step] = inserted;
      return;
    }
    const next = steps[position + 1];
    if (current[step] === undefined || current[step] === null) {
      current[step] = typeof next === "number" ? [] : {};
    }
    current = current[step] as Record<string | number, unknown>;
  });
  return root;
}
