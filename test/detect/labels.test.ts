import test from "ava";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  buildLabelMap,
  loadLabelMapFile,
  mapAnswer,
  validateKeyLabelsMapped,
} from "../../src/detect/labels.ts";
import { temporaryFolder, type Teardown } from "../helpers/temporary.ts";

const classes = ["Bag", "Coat", "Shirt"];

async function mapFile(t: Teardown, value: unknown): Promise<string> {
  const dir = await temporaryFolder(t, "taggants-labels-");
  const path = join(dir, "map.json");
  await writeFile(path, JSON.stringify(value));
  return path;
}

test("suspects that answer names are mapped to the dataset classes by exact name", (t) => {
  const map = buildLabelMap({ labelSpace: { kind: "names" }, classes });
  t.deepEqual(map, { source: "names", table: { Bag: 0, Coat: 1, Shirt: 2 } });
  t.deepEqual(mapAnswer(map, ["coat", "Shirt", "Bag"], 2), { classes: [2], unmapped: 1, given: 3 });
});

test("a checkpoint's class names are matched to the dataset's whatever their order", (t) => {
  const map = buildLabelMap({
    labelSpace: { kind: "named-indices", names: ["Shirt", "Bag", "Coat"] },
    classes,
  });
  t.deepEqual(map.table, { "0": 2, "1": 0, "2": 1 });
});

test("index outputs are taken as dataset classes only when there are exactly C of them", (t) => {
  t.deepEqual(buildLabelMap({ labelSpace: { kind: "indices", count: 3 }, classes }).table, {
    "0": 0,
    "1": 1,
    "2": 2,
  });
  t.throws(() => buildLabelMap({ labelSpace: { kind: "indices", count: 1000 }, classes }), {
    message: /has 1000 outputs but the dataset has 3 classes.*--label-map/,
  });
});

test("a label-map file maps suspect labels to dataset classes by name or index, many to one allowed", async (t) => {
  const table = await loadLabelMapFile(
    await mapFile(t, { handbag: "Bag", tote: 0, jacket: "Coat", tee: 2 }),
    classes,
  );
  const map = buildLabelMap({ labelSpace: { kind: "names" }, classes, file: table });
  t.is(map.source, "file");
  t.deepEqual(mapAnswer(map, ["tote", "handbag", "jacket"], 2), {
    classes: [0],
    unmapped: 0,
    given: 3,
  });
});

test("a label-map file naming a class the dataset lacks is rejected before any query", async (t) => {
  const path = await mapFile(t, { handbag: "Purse" });
  await t.throwsAsync(loadLabelMapFile(path, classes), {
    code: "detect-label-map-invalid",
    message: /"handbag" → "Purse".*"Bag", "Coat", "Shirt"/,
  } as never);
});

test("index label maps need index keys", (t) => {
  t.throws(() => buildLabelMap({ labelSpace: { kind: "indices" }, classes, file: { Bag: 0 } }), {
    message: /keys must be indices/,
  });
});

test("a label map that leaves a key label's class unreachable is an error naming the classes, not the keys", (t) => {
  const map = buildLabelMap({
    labelSpace: { kind: "names" },
    classes,
    file: { handbag: 0, jacket: 1 },
  });
  const error = t.throws(() => validateKeyLabelsMapped({ map, keyLabels: [0, 2, 2, 1], classes }));
  t.is((error as { code?: string }).code, "detect-label-unmapped");
  t.regex(error!.message, /2 of 4 key labels .*unmapped classes: "Shirt"/);
  t.notThrows(() => validateKeyLabelsMapped({ map, keyLabels: [0, 1, 1], classes }));
});
