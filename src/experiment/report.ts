/**
 * The experiment report (issue 6, step 7): `report.json` and `report.md` with a table shaped
 * like the paper's Table 1 — per scenario the validation accuracy, the top-k key accuracy and
 * log10 p (per repeat and combined with Fisher's method) — plus the budget, ε, K, k, C, the
 * clean control's result stated explicitly, and the time of each stage.
 */
import { writeFileAtomic } from "../manifest/atomic.ts";
import type { Scenario } from "./profiles.ts";

export const EXPERIMENT_REPORT_SCHEMA = "taggants.experiment-report/1";

/** Significance level at which the report calls a scenario "detected". */
export const REPORT_ALPHA = 0.01;

export interface ScenarioResult {
  scenario: Scenario;
  model: string;
  recipe: string;
  epochs: number;
  trainedOn: "signed" | "original";
  /** Validation top-1 accuracy (%) per repeat (one value when the model is shared). */
  valTop1: number[];
  /** Top-k hits among the K keys, per repeat. */
  hits: number[];
  /** log10 P[Binomial(K, k/C) ≥ hits], per repeat. */
  log10P: number[];
  /** Fisher's combination over the repeats (equals log10P[0] for one repeat). */
  fisherLog10P: number;
  detected: boolean;
}

export interface ExperimentReport {
  schema: typeof EXPERIMENT_REPORT_SCHEMA;
  createdAt: string;
  createdBy: string;
  profile: string;
  data: { description: string; root: string; trainCount: number; classes: number };
  config: {
    repeats: number;
    keys: number;
    topK: number;
    classes: number;
    eps255: number;
    budget: {
      requested: string;
      imagesPerKey: number;
      signingImages: number;
      fractionOfTrain: number;
    };
    keyResolution: number;
    steps: number;
    restarts: number;
    augDraws: number;
    surrogate: string;
  };
  signing: Array<{
    repeat: number;
    commitment: string;
    cosineMean: number;
    psnrMean: number | null;
    linf255Max: number;
    jpegRetentionMean: number | null;
    /** Mean gradient cosine as crafted and as written, when signing images are JPEG. */
    jpegCosine: { crafted: number; written: number } | null;
  }>;
  scenarios: ScenarioResult[];
  control: {
    scenario: "clean";
    log10P: number;
    pValue: number;
    flagged: boolean;
    statement: string;
  } | null;
  accuracyGap: { signedTop1: number; cleanTop1: number; differencePoints: number } | null;
  timingsSeconds: Record<string, number>;
  files: Record<string, string>;
}

export async function saveReport(options: {
  json: string;
  markdown: string;
  report: ExperimentReport;
}): Promise<void> {
  await writeFileAtomic(options.json, JSON.stringify(options.report, null, 2) + "\n");
  await writeFileAtomic(options.markdown, renderReportMarkdown(options.report));
}

/** The control's sentence: stated whatever its outcome (a clean model is flagged in 1 % of runs). */
export function controlStatement(log10P: number): string {
  const p = 10 ** log10P;
  return p >= REPORT_ALPHA
    ? `The clean control (trained on the original data) is not detected: p = ${formatP(log10P)} ≥ ${REPORT_ALPHA}.`
    : `The clean control (trained on the original data) falls below ${REPORT_ALPHA} (p = ${formatP(log10P)}). Under the null this happens in ${REPORT_ALPHA * 100} % of runs; this run is reported as it came out.`;
}

export function renderTable(report: ExperimentReport): string {
  const { topK } = report.config;
  const header = [
    "scenario",
    "model",
    "recipe",
    "trained on",
    "val. acc. (%)",
    `top-${topK} key acc. (%)`,
    "log10 p per repeat",
    "log10 p (Fisher)",
    `detected (α = ${REPORT_ALPHA})`,
  ];
  const rows = report.scenarios.map((result) => [
    scenarioName(result.scenario),
    result.model,
    result.recipe,
    result.trainedOn === "signed" ? "signed dataset" : "original dataset",
    meanAndSpread(result.valTop1),
    meanAndSpread(result.hits.map((hits) => (100 * hits) / report.config.keys)),
    result.log10P.map((value) => value.toFixed(2)).join(", "),
    result.fisherLog10P.toFixed(2),
    result.detected ? "yes" : "no",
  ]);
  return markdownTable(header, rows);
}

export function renderReportMarkdown(report: ExperimentReport): string {
  const { config } = report;
  const lines = [
    `# taggants experiment — ${report.profile}`,
    "",
    `${report.createdAt}, ${report.createdBy}. Data: ${report.data.description} (${report.data.trainCount} training images, C = ${report.data.classes}).`,
    "",
    "## Results (shaped like Table 1 of the paper)",
    "",
    renderTable(report),
    "",
    report.control ? report.control.statement : "No clean control was trained.",
    "",
  ];
  if (report.accuracyGap) {
    lines.push(
      `Validation accuracy of the ≠ initialisation suspect (signed data) ${report.accuracyGap.signedTop1.toFixed(2)} % vs the same recipe on the clean data ${report.accuracyGap.cleanTop1.toFixed(2)} %: difference ${report.accuracyGap.differencePoints.toFixed(2)} points.`,
      "",
    );
  }
  lines.push(
    "## Setting",
    "",
    `- keys K = ${config.keys} (key images ${config.keyResolution}×${config.keyResolution}, upsampled nearest), top-k k = ${config.topK}, classes C = ${config.classes}; under H0 each key hits with probability k/C = ${(config.topK / config.classes).toPrecision(3)}`,
    `- perturbation bound ε = ${config.eps255}/255`,
    `- signing budget ${config.budget.requested}: ${config.budget.imagesPerKey} images per key, ${config.budget.signingImages} in all = ${(100 * config.budget.fractionOfTrain).toFixed(3)} % of the training set`,
    `- crafting: ${config.steps} steps, ${config.restarts} restart(s), ${config.augDraws} augmentation draw(s) per step; surrogate ${config.surrogate}`,
    `- repeats: ${config.repeats} (independent key secrets and signed datasets; combined with Fisher's method)`,
    "",
    "## Signing",
    "",
    markdownTable(
      [
        "repeat",
        "commitment",
        "mean cosine",
        "mean PSNR (dB)",
        "L∞ of the taggants (1/255)",
        "JPEG pixel retention",
        "JPEG gradient cosine (crafted → written)",
      ],
      report.signing.map((item) => [
        String(item.repeat),
        `\`${item.commitment.slice(0, 16)}…\``,
        item.cosineMean.toFixed(3),
        item.psnrMean === null ? "–" : item.psnrMean.toFixed(1),
        String(item.linf255Max),
        item.jpegRetentionMean === null ? "– (no JPEG)" : item.jpegRetentionMean.toFixed(3),
        item.jpegCosine === null
          ? "– (no JPEG)"
          : `${item.jpegCosine.crafted.toFixed(3)} → ${item.jpegCosine.written.toFixed(3)}`,
      ]),
    ),
    "",
    "## Time per stage",
    "",
    markdownTable(
      ["stage", "seconds"],
      Object.entries(report.timingsSeconds).map(([stage, seconds]) => [stage, seconds.toFixed(1)]),
    ),
    "",
    "## Files",
    "",
    ...Object.entries(report.files).map(([name, path]) => `- ${name}: \`${path}\``),
    "",
    "The figure `taggants.png` and the `private/` folder show which images carry taggants: keep them with the private record, never beside the published dataset.",
    "",
  );
  return lines.join("\n");
}

function scenarioName(scenario: Scenario): string {
  return {
    init: "≠ initialisation",
    aug: "≠ augmentations",
    arch: "≠ architecture",
    clean: "clean control",
  }[scenario];
}

function meanAndSpread(values: number[]): string {
  if (values.length === 0) return "–";
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length === 1) return mean.toFixed(1);
  const sd = Math.sqrt(
    values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1),
  );
  return `${mean.toFixed(1)} ± ${sd.toFixed(1)}`;
}

function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function formatP(log10P: number): string {
  return log10P > -4 ? (10 ** log10P).toPrecision(3) : `10^${log10P.toFixed(2)}`;
}
