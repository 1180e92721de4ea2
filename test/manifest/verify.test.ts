import test from "ava";
import { copyFile, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildManifest, verifyManifest } from "../../src/manifest/index.ts";
import { copyFixture } from "./helpers.ts";

test("verify reports a changed, a missing and an added file and nothing else", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const summary = await buildManifest({ root, out: `${root}.manifest` });
  t.deepEqual(await verifyManifest({ root, manifest: summary.summaryPath }), {
    changed: [],
    missing: [],
    added: [],
  });

  const bag = join(root, "train", "Bag");
  await copyFile(join(bag, "00100.png"), join(bag, "00023.png")); // changed content
  await rm(join(root, "test", "Coat", "00006.png")); // missing
  await copyFile(join(bag, "00100.png"), join(root, "train", "Dress", "extra.png")); // added
  t.deepEqual(await verifyManifest({ root, manifest: summary.summaryPath }), {
    changed: ["train/Bag/00023.png"],
    missing: ["test/Coat/00006.png"],
    added: ["train/Dress/extra.png"],
  });
});

test("verify sees a file moved to another class as missing from one and added to the other", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const summary = await buildManifest({ root, out: `${root}.manifest` });
  await copyFile(join(root, "train", "Bag", "00100.png"), join(root, "train", "Coat", "00100.png"));
  await rm(join(root, "train", "Bag", "00100.png"));
  const result = await verifyManifest({ root, manifest: summary.summaryPath });
  t.deepEqual(result, {
    changed: [],
    missing: ["train/Bag/00100.png"],
    added: ["train/Coat/00100.png"],
  });
});

test("verify finds an unchanged idx dataset unchanged", async (t) => {
  const root = await copyFixture(t, "fashion-mnist-idx");
  const summary = await buildManifest({ root, out: `${root}.manifest` });
  t.deepEqual(await verifyManifest({ root, manifest: summary.summaryPath }), {
    changed: [],
    missing: [],
    added: [],
  });
});

test("verify reports a truncated image as changed and an emptied class folder as missing files", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const summary = await buildManifest({ root, out: `${root}.manifest` });
  const png = join(root, "train", "Sandal", "00013.png");
  const bytes = await readFile(png);
  await writeFile(png, bytes.subarray(0, bytes.length - 30));
  const emptied = join(root, "test", "Dress");
  const gone = (await readdir(emptied)).sort();
  for (const name of gone) await rm(join(emptied, name));
  t.deepEqual(await verifyManifest({ root, manifest: summary.summaryPath }), {
    changed: ["train/Sandal/00013.png"],
    missing: gone.map((name) => `test/Dress/${name}`),
    added: [],
  });
});
