import test from "ava";
import { combineReports } from "../../src/detect/combine.ts";
import type { DetectionReport } from "../../src/detect/report.ts";

function report(
  commitment: string,
  log10P: number,
  verdict = "not-detected",
  suspect = "v2:http://h/v2/models/m",
): { path: string; report: DetectionReport } {
  return {
    path: `${commitment}.json`,
    report: {
      suspect: { spec: suspect },
      commitment: { commitment },
      result: { verdict, keys: { log10_p: log10P }, controls: null },
    } as unknown as DetectionReport,
  };
}

test("two runs at p = 0.01 combine by Fisher to p = 1e-4 · (1 + ln 1e4)", (t) => {
  const combined = combineReports({
    reports: [report("a".repeat(64), -2), report("b".repeat(64), -2)],
    alpha: 0.01,
  });
  const s = 2 * Math.log(100); // X / 2
  t.true(Math.abs(combined.log10_p - Math.log10(Math.exp(-s) * (1 + s))) < 1e-9);
  t.is(combined.degrees_of_freedom, 4);
  t.is(combined.verdict, "detected");
});

test("reports sharing a commitment are not independent and are refused", (t) => {
  t.throws(
    () =>
      combineReports({
        reports: [report("a".repeat(64), -2), report("a".repeat(64), -3)],
        alpha: 0.01,
      }),
    { message: /same commitment/ },
  );
});

test("reports about different suspects are refused", (t) => {
  t.throws(
    () =>
      combineReports({
        reports: [
          report("a".repeat(64), -2),
          report("b".repeat(64), -3, "detected", "torchserve:http://h/predictions/m"),
        ],
        alpha: 0.01,
      }),
    { message: /different suspects/ },
  );
});

test("every run counts, and a non-significant combination with an inconclusive run is inconclusive", (t) => {
  const combined = combineReports({
    reports: [report("a".repeat(64), -0.5, "inconclusive"), report("b".repeat(64), -0.3)],
    alpha: 0.01,
  });
  t.is(combined.reports.length, 2);
  t.is(combined.verdict, "inconclusive");
});

test("one suspect spelled two ways is one suspect: specs are compared as detect reads them", (t) => {
  for (const [first, second] of [
    ["checkpoint:m2", "m2"],
    ["checkpoint:runs/./m2/", "runs/m2"],
    ["v2:http://Host:8080/v2/models/m/", "v2:http://host:8080/v2/models/m"],
  ] as const) {
    const combined = combineReports({
      reports: [
        report("a".repeat(64), -2, "detected", first),
        report("b".repeat(64), -2, "detected", second),
      ],
      alpha: 0.01,
    });
    t.is(combined.suspect, first);
  }
  t.throws(
    () =>
      combineReports({
        reports: [
          report("a".repeat(64), -2, "detected", "checkpoint:m2"),
          report("b".repeat(64), -2, "detected", "m3"),
        ],
        alpha: 0.01,
      }),
    { message: /different suspects \(checkpoint:m2, m3\)/ },
  );
});
