/**
 * The signing set (METHOD.md, Signing, step 2): for each key, the training images of the key's
 * label that receive a taggant. They are drawn at random from a keyed stream of the key secret
 * (context `signing-set/<original root hash>`), so the owner can regenerate them and nobody
 * without the secret can tell them from the public data. Keys may share a label; an image belongs
 * to at most one key.
 *
 * Draw (scheme 1): for each class that is some key's label, in increasing class order, the
 * class's training indices (ascending) are shuffled with the stream (Fisher–Yates); then keys, in
 * key order, take the next n eligible indices of their label's shuffled list. Images whose file
 * cannot carry a taggant written faithfully (see image-codec.ts) are skipped, never rewritten in
 * another format.
 *
 * Messages never name a key's label: labels are secret.
 */
import { UsageError } from "../errors.ts";
import { KeyedStream } from "../keys/random.ts";

/** The signing budget: a fraction B of the training split, or n signing images per key. */
export type SigningBudget = { fraction: number } | { perKey: number };

export const DEFAULT_BUDGET_FRACTION = 0.001;

/** Images per key: ⌊B·N/K⌋ for a fraction, or the count given. Throws when it rounds to zero. */
export function resolveImagesPerKey(options: {
  budget: SigningBudget;
  trainCount: number;
  keyCount: number;
}): number {
  const { budget, trainCount, keyCount } = options;
  validateBudget(budget);
  if ("perKey" in budget) return budget.perKey;
  const perKey = Math.floor((budget.fraction * trainCount) / keyCount);
  if (perKey < 1) {
    throw new UsageError(
      "budget-rounds-to-zero",
      `A budget of ${budget.fraction} of ${trainCount} training images over ${keyCount} keys rounds to 0 signing images per key. Raise --budget to at least ${(keyCount / trainCount).toPrecision(2)}, give --per-key, or use fewer keys.`,
    );
  }
  return perKey;
}

/** ε in units of 1/255 must lie in (0, 255]. */
/** A budget is a count ≥ 1 per key or a fraction in (0, 1); checked before any indexing. */
export function validateBudget(budget: SigningBudget): void {
  if ("perKey" in budget) {
    if (!Number.isInteger(budget.perKey) || budget.perKey < 1) {
      throw new UsageError(
        "budget-invalid",
        `The number of signing images per key (--per-key) must be an integer >= 1; received ${budget.perKey}.`,
      );
    }
    return;
  }
  if (!(budget.fraction > 0 && budget.fraction < 1)) {
    throw new UsageError(
      "budget-invalid",
      `The signing budget (--budget) must be a fraction of the training set in (0, 1), e.g. 0.001 for 0.1 %; received ${budget.fraction}.`,
    );
  }
}

export function validateEps255(eps255: number): void {
  if (!(Number.isFinite(eps255) && eps255 > 0 && eps255 <= 255)) {
    throw new UsageError(
      "eps-out-of-range",
      `The perturbation bound ε is given in units of 1/255 and must lie in (0, 255]; received ${eps255}. The paper uses 16 (16/255).`,
    );
  }
}

/** The surrogate must score the dataset's classes, in the dataset's order. */
export function validateSurrogateClasses(options: {
  surrogate: string;
  surrogateClasses: readonly string[] | number;
  datasetClasses: readonly string[];
}): void {
  const { surrogate, surrogateClasses, datasetClasses } = options;
  const count = typeof surrogateClasses === "number" ? surrogateClasses : surrogateClasses.length;
  if (count !== datasetClasses.length) {
    throw new UsageError(
      "surrogate-classes-mismatch",
      `The surrogate ${surrogate} has ${count} classes but the dataset has ${datasetClasses.length}. Train the surrogate on this dataset (taggants train) or give a matching checkpoint.`,
    );
  }
  if (typeof surrogateClasses !== "number") {
    const differing = surrogateClasses.findIndex((name, i) => name !== datasetClasses[i]);
    if (differing >= 0) {
      throw new UsageError(
        "surrogate-classes-mismatch",
        `The surrogate ${surrogate} names class ${differing} "${surrogateClasses[differing]}" where the dataset has "${datasetClasses[differing]}"; it was trained on another dataset or class order.`,
      );
    }
  }
}

export interface ChooseSigningSetOptions {
  secret: Uint8Array;
  /** Root hash of the original dataset's manifest. */
  rootHash: string;
  keyLabels: ArrayLike<number>;
  /** Class index of every training image, by position in the training split. */
  trainLabels: ArrayLike<number>;
  perKey: number;
  /** Whether a training image can carry a taggant (default: all can). */
  isEligible?: (index: number) => boolean | Promise<boolean>;
}

/** Signing indices per key: `result[i]` holds key i's `perKey` training indices. */
export async function chooseSigningSet(options: ChooseSigningSetOptions): Promise<number[][]> {
  const { secret, rootHash, keyLabels, trainLabels, perKey } = options;
  const isEligible = options.isEligible ?? (() => true);
  const pools = shuffledPools({ secret, rootHash, keyLabels, trainLabels });
  const cursors = new Map<number, number>();
  const result: number[][] = [];
  for (let key = 0; key < keyLabels.length; key++) {
    const label = keyLabels[key]!;
    const pool = pools.get(label)!;
    let cursor = cursors.get(label) ?? 0;
    const chosen: number[] = [];
    while (chosen.length < perKey && cursor < pool.length) {
      const index = pool[cursor++]!;
      if (await isEligible(index)) chosen.push(index);
    }
    cursors.set(label, cursor);
    if (chosen.length < perKey) throw tooFewImages({ key, perKey, pool, found: chosen.length });
    result.push(chosen);
  }
  return result;
}

function shuffledPools(options: {
  secret: Uint8Array;
  rootHash: string;
  keyLabels: ArrayLike<number>;
  trainLabels: ArrayLike<number>;
}): Map<number, number[]> {
  const labels = [...new Set(Array.from(options.keyLabels))].sort((a, b) => a - b);
  const byClass = new Map<number, number[]>(labels.map((label) => [label, []]));
  for (let index = 0; index < options.trainLabels.length; index++) {
    byClass.get(options.trainLabels[index]!)?.push(index);
  }
  const stream = new KeyedStream(options.secret, `signing-set/${options.rootHash}`);
  return new Map(labels.map((label) => [label, stream.shuffle(byClass.get(label)!)]));
}

function tooFewImages(options: {
  key: number;
  perKey: number;
  pool: readonly number[];
  found: number;
}): UsageError {
  const { key, perKey, pool, found } = options;
  return new UsageError(
    "signing-set-too-few-images",
    `Key ${key} needs ${perKey} signing images of its label, but only ${found} eligible images of that class were left (the class has ${pool.length} training images; keys sharing a label share them, and images that cannot be rewritten in their own format are skipped). Lower the budget or use fewer keys.`,
  );
}
