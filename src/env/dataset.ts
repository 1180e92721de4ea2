/**
 * The embedded default dataset, Fashion-MNIST: where its idx files are on this machine.
 * `scripts/bootstrap.mjs` installs or downloads them; this module only finds them.
 */
import { UsageError } from "../errors.ts";
import { HOW_TO_GET, findFashionMnist } from "../../scripts/fashion-mnist.mjs";

export function resolveFashionMnist(): string {
  const dir = findFashionMnist() as string | undefined;
  if (!dir) throw new UsageError("dataset_missing", HOW_TO_GET);
  return dir;
}
