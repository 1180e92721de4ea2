/** Exact, log-space statistics for detection: binomial tail, Fisher's method, Clopper–Pearson. */
export { log10BinomialTail, binomialTest, validateBinomialQuestion } from "./binomial.ts";
export type { BinomialQuestion, BinomialTestResult } from "./binomial.ts";
export { fisherCombine, validateLog10Ps } from "./fisher.ts";
export type { FisherResult } from "./fisher.ts";
export { clopperPearson } from "./clopper-pearson.ts";
export type { Interval } from "./clopper-pearson.ts";
