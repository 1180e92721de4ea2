/**
 * One message for an input file that is not what a command expects: the file, what was
 * expected, and the first problem with where it is ("at splits.train.count: …"), instead of a
 * schema library's dump of every issue.
 */
import { ZodError } from "zod";
import { UsageError } from "./errors.ts";

/**
 * Parse the text of a JSON input file against its schema; anything wrong (syntax or form) is the
 * one-line `invalidFileError` for that file.
 */
export function parseJsonFile<T>(
  text: string,
  schema: { parse(value: unknown): T },
  about: Omit<Parameters<typeof invalidFileError>[0], "error">,
): T {
  try {
    return schema.parse(JSON.parse(text));
  } catch (error) {
    throw invalidFileError({ ...about, error });
  }
}

export function invalidFileError(options: {
  code: string;
  /** The file (or URL) that was read. */
  file: string;
  /** What it should have been, e.g. "a taggants manifest (taggants.manifest/1)". */
  expected: string;
  /** The JSON.parse or schema error. */
  error: unknown;
  /** What to do about it, when there is something better than "fix the file". */
  hint?: string;
}): UsageError {
  const hint = options.hint ? `\n${options.hint}` : "";
  return new UsageError(
    options.code,
    `${options.file} is not ${options.expected}: ${describeFirstProblem(options.error)}.${hint}`,
    { cause: options.error },
  );
}

/** The first problem of a JSON syntax or schema error, with its path inside the document. */
export function describeFirstProblem(error: unknown): string {
  if (error instanceof SyntaxError) return `not valid JSON (${error.message})`;
  if (error instanceof ZodError) {
    const [first, ...rest] = error.issues;
    if (!first) return "it does not match the expected form";
    const where = first.path.length === 0 ? "at the top level" : `at ${formatPath(first.path)}`;
    const more =
      rest.length === 0 ? "" : ` (and ${rest.length} more problem${rest.length === 1 ? "" : "s"})`;
    return `${where}: ${first.message}${more}`;
  }
  return error instanceof Error ? error.message : String(error);
}

function formatPath(path: PropertyKey[]): string {
  return path
    .map((part, i) =>
      typeof part === "number" ? `[${part}]` : `${i === 0 ? "" : "."}${String(part)}`,
    )
    .join("");
}
