/** The `created_by` string recorded in manifests and commitments: "taggants <version>". */
import { readFileSync } from "node:fs";

let cached: string | undefined;

export function createdBy(): string {
  if (cached === undefined) {
    const url = new URL("../../package.json", import.meta.url);
    const version = (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version;
    cached = `taggants ${version}`;
  }
  return cached;
}
