import test from "ava";
import {
  controlStatement,
  renderReportMarkdown,
  renderTable,
  type ExperimentReport,
} from "../../src/experiment/report.ts";

function report(): ExperimentReport {
  return {
    schema: "taggants.experiment-report/1",
    createdAt: "2026-12-03T00:00:00.000Z",
    createdBy: "taggants 0.1.0",
    profile: "fashion-mnist",
    data: { description: "Fashion-MNIST", root: "/data", trainCount: 20_000, classes: 10 },
    config: {
      repeats: 2,
      keys: 10,
      topK: 1,
      classes: 10,
      eps255: 16,
      budget: {
        requested: "2 % of the training set",
        imagesPerKey: 40,
        signingImages: 400,
        fractionOfTrain: 0.02,
      },
      keyResolution: 7,
      steps: 150,
      restarts: 1,
      augDraws: 2,
      surrogate: "cnn",
    },
    signing: [
      {
        repeat: 0,
        commitment: "ab".repeat(32),
        cosineMean: 0.7,
        psnrMean: 29.1,
        linf255Max: 16,
        jpegRetentionMean: null,
        jpegCosine: null,
      },
    ],
    scenarios: [
      {
        scenario: "init",
        model: "cnn",
        recipe: "simple",
        epochs: 8,
        trainedOn: "signed",
        valTop1: [90, 92],
        hits: [6, 8],
        log10P: [-3.89, -6.44],
        fisherLog10P: -9.1,
        detected: true,
      },
      {
        scenario: "clean",
        model: "cnn",
        recipe: "simple",
        epochs: 8,
        trainedOn: "original",
        valTop1: [91],
        hits: [1, 2],
        log10P: [-0.19, -0.59],
        fisherLog10P: -0.5,
        detected: false,
      },
    ],
    control: {
      scenario: "clean",
      log10P: -0.5,
      pValue: 10 ** -0.5,
      flagged: false,
      statement: controlStatement(-0.5),
    },
    accuracyGap: { signedTop1: 91, cleanTop1: 91, differencePoints: 0 },
    timingsSeconds: { surrogate: 170.2, "signing (repeat 0)": 486 },
    files: { report: "/runs/x/report.md" },
  };
}

test("the report table has one Table-1 row per scenario with mean ± sd over repeats", (t) => {
  const lines = renderTable(report()).split("\n");
  t.is(lines.length, 4);
  t.is(
    lines[0],
    "| scenario | model | recipe | trained on | val. acc. (%) | top-1 key acc. (%) | log10 p per repeat | log10 p (Fisher) | detected (α = 0.01) |",
  );
  // Hits 6 and 8 of 10 keys: 70 % ± 14.1 (sample standard deviation).
  t.is(
    lines[2],
    "| ≠ initialisation | cnn | simple | signed dataset | 91.0 ± 1.4 | 70.0 ± 14.1 | -3.89, -6.44 | -9.10 | yes |",
  );
  t.is(
    lines[3],
    "| clean control | cnn | simple | original dataset | 91.0 | 15.0 ± 7.1 | -0.19, -0.59 | -0.50 | no |",
  );
});

test("the control's result is stated whether or not it falls below α", (t) => {
  t.is(
    controlStatement(-0.5),
    "The clean control (trained on the original data) is not detected: p = 0.316 ≥ 0.01.",
  );
  t.regex(
    controlStatement(-2.5),
    /falls below 0.01 \(p = 0.00316\)\. Under the null this happens in 1 % of runs; this run is reported as it came out\./,
  );
});

test("the markdown report states budget, ε, K, k, C and the time of each stage", (t) => {
  const markdown = renderReportMarkdown(report());
  t.regex(markdown, /keys K = 10 .*top-k k = 1, classes C = 10/);
  t.regex(markdown, /perturbation bound ε = 16\/255/);
  t.regex(markdown, /40 images per key, 400 in all = 2\.000 % of the training set/);
  t.regex(markdown, /\| surrogate \| 170\.2 \|/);
  t.regex(markdown, /The clean control \(trained on the original data\) is not detected/);
});
